package org.prpnas.bridge;

import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Each path's latency as the runtime runs it (Python: {@code prp.runtime.measuring.Recorder}): per
 * path, the first {@code warmupCalls} calls are left out (weights packed, buffers allocated), then the
 * per-image time of the last {@code keep} calls is kept in a ring, so memory stays {@code keep} longs
 * per path however long the app runs. Statistics are robust ones: median and quartiles (linear
 * interpolation between order statistics, as numpy's default). Thread-safe; a record takes one
 * uncontended per-path lock.
 */
public final class PathLatency {
    /** Robust statistics of one path's kept calls, milliseconds per image. */
    public static final class Stats {
        /** Median, first and third quartile, ms per image. */
        public final double medianMs, p25Ms, p75Ms;
        /** Calls the statistics are over (at most {@code keep}). */
        public final int samples;
        /** Calls timed after warm-up, all of them. */
        public final long calls;

        Stats(double medianMs, double p25Ms, double p75Ms, int samples, long calls) {
            this.medianMs = medianMs;
            this.p25Ms = p25Ms;
            this.p75Ms = p75Ms;
            this.samples = samples;
            this.calls = calls;
        }

        @Override
        public String toString() {
            return Fmt.g(medianMs) + " ms (" + Fmt.g(p25Ms) + "-" + Fmt.g(p75Ms) + "), " + samples + " of "
                    + calls + " calls";
        }
    }

    private static final class Ring {
        final long[] nanos;
        long seen; // calls, warm-up included
        long kept; // calls after warm-up

        Ring(int keep) {
            nanos = new long[keep];
        }
    }

    private final int warmupCalls;
    private final Map<String, Ring> rings = new HashMap<String, Ring>();

    /**
     * @param ids the bundle's path ids
     * @param warmupCalls calls of each path left out first (>= 0)
     * @param keep calls kept per path (>= 1)
     */
    public PathLatency(List<String> ids, int warmupCalls, int keep) {
        if (warmupCalls < 0 || keep < 1) {
            throw new IllegalArgumentException("warmupCalls must be >= 0 and keep >= 1, got " + warmupCalls + " and "
                    + keep);
        }
        this.warmupCalls = warmupCalls;
        for (String id : ids) {
            rings.put(id, new Ring(keep));
        }
    }

    /** Three warm-up calls, the last 256 kept: the Python runtime's defaults. */
    public PathLatency(List<String> ids) {
        this(ids, 3, 256);
    }

    /**
     * One call of {@code path} that took {@code nanos} for {@code images} images.
     *
     * @throws IllegalArgumentException for a path it does not know
     */
    public void record(String path, long nanos, int images) {
        Ring r = ring(path);
        synchronized (r) {
            r.seen++;
            if (r.seen > warmupCalls) {
                r.nanos[(int) (r.kept % r.nanos.length)] = nanos / Math.max(images, 1);
                r.kept++;
            }
        }
    }

    /** The statistics of {@code path}, or {@code null} before its first call after warm-up. */
    public Stats stats(String path) {
        Ring r = ring(path);
        long[] values;
        long calls;
        synchronized (r) {
            calls = r.kept;
            values = Arrays.copyOf(r.nanos, (int) Math.min(r.kept, r.nanos.length));
        }
        if (values.length == 0) {
            return null;
        }
        Arrays.sort(values);
        return new Stats(quantileMs(values, 0.5), quantileMs(values, 0.25), quantileMs(values, 0.75), values.length,
                calls);
    }

    private Ring ring(String path) {
        Ring r = rings.get(path);
        if (r == null) {
            throw new IllegalArgumentException("no path '" + path + "' is measured; paths are " + rings.keySet());
        }
        return r;
    }

    private static double quantileMs(long[] sorted, double q) {
        double pos = q * (sorted.length - 1);
        int lo = (int) Math.floor(pos);
        int hi = Math.min(lo + 1, sorted.length - 1);
        double v = sorted[lo] + (pos - lo) * (sorted[hi] - sorted[lo]);
        return v / 1e6;
    }
}
