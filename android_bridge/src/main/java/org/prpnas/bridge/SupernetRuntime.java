package org.prpnas.bridge;

import java.io.Closeable;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;

/**
 * One loaded bundle, a policy and a battery: runs, per call, the path the policy picks (Python:
 * {@code prp.runtime.AdaptiveModel}, same decisions).
 *
 * <p>The engine has every path's method loaded once, so a switch costs nothing but a field write.
 * The path is chosen once per call under a lock, then run outside it, so concurrent calls during
 * switches never mix paths within a call. The policy is asked again when the battery reading
 * changes and at least every {@code decideEverySeconds} of the clock; otherwise the last decision
 * stands. {@link #switchTo} pins a path by hand until {@link #followPolicy()}. Every switch is logged
 * ({@link #switches()}). Every engine call is timed per path ({@link #latency()}: warm-up excluded,
 * median and quartiles of the last calls, bounded memory), as the Python runtime measures its paths.
 *
 * <pre>{@code
 * Manifest manifest = Manifest.load(bundleDir);
 * SupernetRuntime runtime = SupernetRuntime.builder(manifest, ExecuTorchEngine.open(manifest))
 *         .battery(new BatteryReader(new AndroidBatteryReader(context)))
 *         .build();
 * Prediction p = runtime.predict(manifest.input().fromArgbPixels(pixels, 1), manifest.input().batchShape(1));
 * }</pre>
 */
public final class SupernetRuntime implements Closeable {
    private final Manifest manifest;
    private final InferenceEngine engine;
    private final Policy policy;
    private final BatterySource battery;
    private final Clock clock;
    private final double everyH;
    private final List<String> ids;
    private final PathLatency latency;
    private final PathEnergy energy;

    private final Object lock = new Object();
    private final List<PathSwitch> switches = new ArrayList<PathSwitch>();
    private String current;
    private String pinned;
    private Double lastBattery;
    private double dueH;
    private String reason = "";
    private volatile boolean closed;

    /** Builds a {@link SupernetRuntime}; only the manifest and the engine are required. */
    public static final class Builder {
        private final Manifest manifest;
        private final InferenceEngine engine;
        private Policy policy;
        private BatterySource battery;
        private Clock clock;
        private double decideEverySeconds = 1.0;
        private BatteryEnergyMeter energyMeter;

        private Builder(Manifest manifest, InferenceEngine engine) {
            if (manifest == null || engine == null) {
                throw new IllegalArgumentException("SupernetRuntime needs a manifest and an engine");
            }
            this.manifest = manifest;
            this.engine = engine;
        }

        /** The policy to follow; default: the manifest's default policy. */
        public Builder policy(Policy policy) {
            this.policy = policy;
            return this;
        }

        /** A policy from the manifest's tables by name ({@link Policies#fromManifest(Manifest, String)}). */
        public Builder policy(String name) {
            this.policy = Policies.fromManifest(manifest, name);
            return this;
        }

        /** Where the battery level comes from; default: no reading (the most accurate path). */
        public Builder battery(BatterySource battery) {
            this.battery = battery;
            return this;
        }

        /** The clock; default: {@link Clock#system()} from {@link #build()}. */
        public Builder clock(Clock clock) {
            this.clock = clock;
            return this;
        }

        /**
         * Attributes the battery's energy to paths as the app runs ({@link SupernetRuntime#energy()});
         * default: none. The meter is read at most once a second of calls (a call into the battery
         * service), in the calling thread.
         */
        public Builder energyMeter(BatteryEnergyMeter meter) {
            this.energyMeter = meter;
            return this;
        }

        /** Longest time between two policy decisions with an unchanged battery reading; default 1 s. */
        public Builder decideEverySeconds(double seconds) {
            if (!(seconds >= 0)) {
                throw new IllegalArgumentException("decideEverySeconds must be >= 0, got " + seconds);
            }
            this.decideEverySeconds = seconds;
            return this;
        }

        /**
         * Checks that the program offers every path's method, and makes the first decision. The runtime
         * then owns the engine ({@link SupernetRuntime#close()} closes it).
         *
         * @throws BundleException if the manifest names a method the program lacks
         */
        public SupernetRuntime build() throws BundleException {
            checkMethods(manifest, engine.methods());
            return new SupernetRuntime(this);
        }
    }

    /**
     * @param manifest the bundle's validated manifest
     * @param engine the bundle's program, every method loaded
     */
    public static Builder builder(Manifest manifest, InferenceEngine engine) {
        return new Builder(manifest, engine);
    }

    private SupernetRuntime(Builder b) {
        this.manifest = b.manifest;
        this.engine = b.engine;
        this.policy = b.policy != null ? b.policy : Policies.fromManifest(b.manifest);
        this.battery = b.battery != null ? b.battery : new PushedBattery();
        this.clock = b.clock != null ? b.clock : Clock.system();
        this.everyH = b.decideEverySeconds / 3600.0;
        this.ids = manifest.ids();
        this.latency = new PathLatency(ids);
        this.energy = b.energyMeter != null ? new PathEnergy(ids, b.energyMeter, this.clock) : null;
        decide();
    }

    /**
     * @throws BundleException naming every manifest path whose method {@code methods} lacks
     */
    static void checkMethods(Manifest manifest, Set<String> methods) throws BundleException {
        List<String> missing = new ArrayList<String>();
        for (PathInfo p : manifest.paths()) {
            if (!methods.contains(p.method())) {
                missing.add(p.id() + " (method '" + p.method() + "')");
            }
        }
        if (!missing.isEmpty()) {
            throw new BundleException("the program lacks the method of manifest path " + Manifest.join(missing, ", ")
                    + "; it offers " + new TreeSet<String>(methods) + ". The bundle's manifest.json and "
                    + Manifest.PROGRAM_FILE + " disagree (files from two exports?): export the bundle again with "
                    + "prp-export and copy the whole folder");
        }
    }

    // ------------------------------------------------------------------ choosing

    /** The path in use now. */
    public String currentPath() {
        synchronized (lock) {
            return current;
        }
    }

    /** Every switch so far, oldest first (a copy). */
    public List<PathSwitch> switches() {
        synchronized (lock) {
            return Collections.unmodifiableList(new ArrayList<PathSwitch>(switches));
        }
    }

    private void switchLocked(String to, String why, Double batteryPct) {
        if (to.equals(current)) {
            return;
        }
        switches.add(new PathSwitch(clock.nowH(), current, to, why, batteryPct));
        current = to;
    }

    /** Asks the policy now (or honours a manual pin) and switches if it says so. */
    public Decision decide() {
        synchronized (lock) {
            return decideLocked();
        }
    }

    private Decision decideLocked() {
        Double reading = battery.read();
        double now = clock.nowH();
        Decision decision;
        if (pinned != null) {
            decision = new Decision(pinned, "pinned by switchTo");
        } else {
            decision = policy.decide(new PolicyContext(reading, now, current));
            if (!ids.contains(decision.path())) {
                throw new PolicyException("policy " + policy.name() + " chose path '" + decision.path()
                        + "', which the bundle lacks (" + ids + ")");
            }
        }
        switchLocked(decision.path(), decision.reason(), reading);
        lastBattery = reading;
        dueH = now + everyH;
        reason = decision.reason();
        return decision;
    }

    /**
     * Runs {@code path} from now on, whatever the policy says, until {@link #followPolicy()}.
     *
     * @param path a path id of the bundle
     * @param why logged as the switch's reason
     * @throws PolicyException if the bundle has no such path
     */
    public void switchTo(String path, String why) {
        if (!ids.contains(path)) {
            throw new PolicyException("no path '" + path + "' in the bundle; paths are " + ids);
        }
        synchronized (lock) {
            pinned = path;
            reason = "pinned by switchTo (" + why + ")";
            switchLocked(path, why, battery.read());
        }
    }

    /** Same as {@code switchTo(path, "manual")}. */
    public void switchTo(String path) {
        switchTo(path, "manual");
    }

    /** Lets the policy choose again, from the next call on. */
    public void followPolicy() {
        synchronized (lock) {
            pinned = null;
            dueH = 0.0;
        }
    }

    /** The path for this call and why: asks the policy again only when something it reads changed. */
    private String[] choose() {
        Double reading = battery.read();
        double now = clock.nowH();
        synchronized (lock) {
            if (pinned == null && (!equal(reading, lastBattery) || now >= dueH)) {
                decideLocked();
            }
            return new String[] {current, reason};
        }
    }

    private static boolean equal(Double a, Double b) {
        return a == null ? b == null : b != null && a.doubleValue() == b.doubleValue();
    }

    // ------------------------------------------------------------------ running

    /**
     * Logits of the path the policy picks now; one path for the whole batch.
     *
     * @param input normalised float32 values, NCHW, row-major (see {@link InputSpec})
     * @param shape {@code (N, C, H, W)}, or {@code (C, H, W)} for one image
     * @throws InputException for input of the wrong shape or with NaN / infinite values
     * @throws IllegalStateException after {@link #close()}
     */
    public Prediction predict(float[] input, long[] shape) {
        long[] s = manifest.input().checkFloat(input, shape);
        if (closed) {
            throw new IllegalStateException("this SupernetRuntime is closed; build a new one");
        }
        String[] chosen = choose();
        float[] logits = runPath(chosen[0], input, s);
        return new Prediction(logits, (int) s[0], manifest.classes(), chosen[0], chosen[1]);
    }

    /**
     * Logits of {@code count} 8-bit RGB images stored NHWC, normalised with the manifest's mean and
     * std ({@link InputSpec#fromImagesNhwc}).
     */
    public Prediction predictImages(byte[] pixelsNhwc, int count) {
        return predict(manifest.input().fromImagesNhwc(pixelsNhwc, count), manifest.input().batchShape(count));
    }

    /**
     * Logits of one named path, bypassing the policy (for tests and benchmarks).
     *
     * @throws PolicyException if the bundle has no such path
     */
    public float[] runPath(String path, float[] input, long[] shape) {
        long[] s = manifest.input().checkFloat(input, shape);
        String method = manifest.path(path).method();
        int n = (int) s[0];
        long start = System.nanoTime();
        int fixed = manifest.input().programBatch();
        float[] logits;
        if (n == fixed || fixed <= 0) {
            logits = engine.run(method, input, s);
        } else if (fixed == 1) { // the program is exported at batch 1: one image at a time
            int size = manifest.input().imageSize();
            int k = manifest.classes().size();
            logits = new float[n * k];
            for (int r = 0; r < n; r++) {
                float[] row = Arrays.copyOfRange(input, r * size, (r + 1) * size);
                float[] out = checkOutput(engine.run(method, row, manifest.input().batchShape(1)), 1);
                System.arraycopy(out, 0, logits, r * k, k);
            }
        } else {
            throw new InputException("the program takes batches of exactly " + fixed + " images, got " + n);
        }
        latency.record(path, System.nanoTime() - start, n);
        if (energy != null) {
            energy.record(path, n);
        }
        return checkOutput(logits, n);
    }

    /**
     * The battery's energy attributed to paths ({@link PathEnergy#attribute()}), or {@code null}
     * without {@link Builder#energyMeter}.
     */
    public PathEnergy energy() {
        return energy;
    }

    /** Each path's latency as measured on this device so far (per image, warm-up excluded). */
    public PathLatency latency() {
        return latency;
    }

    private float[] checkOutput(float[] logits, int rows) {
        int expected = rows * manifest.classes().size();
        if (logits == null || logits.length != expected) {
            throw new IllegalStateException("the program returned " + (logits == null ? "nothing" : logits.length
                    + " values") + " for " + rows + " image(s); expected " + rows + " x " + manifest.classes().size()
                    + " class logits: the bundle's program does not match its manifest; export the bundle again");
        }
        return logits;
    }

    /** The bundle's manifest. */
    public Manifest manifest() {
        return manifest;
    }

    /** The policy being followed. */
    public Policy policy() {
        return policy;
    }

    /** Frees the engine; later predictions throw {@link IllegalStateException}. */
    @Override
    public void close() {
        closed = true;
        engine.close();
    }
}
