package org.prpnas.bridge;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNotNull;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.Set;
import org.junit.Test;

/** Per-path latency as the runtime runs: warm-up left out, robust statistics, bounded memory. */
public class PathLatencyTest {
    private static final long MS = 1_000_000L;

    @Test
    public void warmUpIsLeftOutAndQuartilesAreNumpys() {
        PathLatency lat = new PathLatency(Arrays.asList("a", "b"), 3, 256);
        for (int i = 0; i < 3; i++) {
            lat.record("a", 5000 * MS, 1); // slow first calls
        }
        assertNull(lat.stats("a"));
        for (long ms = 1; ms <= 9; ms++) {
            lat.record("a", 2 * ms * MS, 2); // per image: ms
        }
        PathLatency.Stats s = lat.stats("a");
        assertEquals(5.0, s.medianMs, 1e-9);
        assertEquals(3.0, s.p25Ms, 1e-9); // numpy.percentile([1..9], 25)
        assertEquals(7.0, s.p75Ms, 1e-9);
        assertEquals(9, s.samples);
        assertEquals(9L, s.calls);
        assertNull(lat.stats("b"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> lat.record("c", 1, 1));
        assertTrue(e.getMessage(), e.getMessage().contains("no path 'c'"));
    }

    @Test
    public void memoryIsBoundedAndAnOutlierDoesNotMoveTheMedian() {
        PathLatency lat = new PathLatency(Arrays.asList("a"), 0, 8);
        for (int k = 0; k < 1000; k++) {
            lat.record("a", k % 10 == 9 ? 900 * MS : MS, 1);
        }
        PathLatency.Stats s = lat.stats("a");
        assertEquals(8, s.samples);
        assertEquals(1000L, s.calls);
        assertEquals(1.0, s.medianMs, 1e-9);
    }

    /** An engine whose every call takes at least {@code pauseMs}. */
    private static final class SleepingEngine implements InferenceEngine {
        private final RecordingEngine inner;
        private final long pauseMs;

        SleepingEngine(int paths, long pauseMs) {
            this.inner = RecordingEngine.withPaths(paths);
            this.pauseMs = pauseMs;
        }

        @Override
        public Set<String> methods() {
            return new LinkedHashSet<String>(inner.methods());
        }

        @Override
        public float[] run(String method, float[] input, long[] shape) {
            try {
                Thread.sleep(pauseMs);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            return inner.run(method, input, shape);
        }

        @Override
        public void close() {
            inner.close();
        }
    }

    @Test
    public void theRuntimeTimesEveryCallOfThePathThatRan() throws Exception {
        Manifest manifest = Bundles.shippedManifest();
        SupernetRuntime rt = SupernetRuntime.builder(manifest, new SleepingEngine(manifest.ids().size(), 2)).build();
        long[] one = manifest.input().batchShape(1);
        float[] image = new float[manifest.input().imageSize()];
        String path = rt.currentPath();
        for (int i = 0; i < 3; i++) {
            rt.predict(image, one);
        }
        assertNull("warm-up calls are left out", rt.latency().stats(path));
        rt.predict(image, one);
        rt.predict(image, one);
        PathLatency.Stats s = rt.latency().stats(path);
        assertNotNull(s);
        assertEquals(2L, s.calls);
        assertTrue(s.toString(), s.medianMs >= 2.0 && s.p25Ms <= s.medianMs && s.medianMs <= s.p75Ms);
        String other = manifest.ids().get(manifest.ids().size() - 1);
        assertNull(rt.latency().stats(other));
    }
}
