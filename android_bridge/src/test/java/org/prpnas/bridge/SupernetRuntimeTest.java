package org.prpnas.bridge;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.TreeSet;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.json.JSONObject;
import org.junit.Test;

/** SupernetRuntime on the shipped manifest with a recording engine in place of ExecuTorch. */
public class SupernetRuntimeTest {
    private static final long[] ONE = {1, 3, 32, 32};
    private static final float[] IMAGE = new float[3 * 32 * 32];

    private static SupernetRuntime.Builder builder(InferenceEngine engine) throws BundleException {
        return SupernetRuntime.builder(Bundles.shippedManifest(), engine);
    }

    /** An engine with the method of every path of the shipped bundle (path_0 ... by the format). */
    private static RecordingEngine engine() throws Exception {
        return RecordingEngine.withPaths(Bundles.ids().size());
    }

    private static String oneDecimal(double pct) {
        return String.format(Locale.ROOT, "%.1f", pct);
    }

    @Test
    public void aMethodMissingFromTheProgramIsNamed() throws Exception {
        List<String> ids = Bundles.ids(2, "aMethodMissingFromTheProgramIsNamed");
        int n = ids.size();
        RecordingEngine engine = RecordingEngine.withPaths(n - 1); // the program lacks the last path's
        String lastMethod = Bundles.rawJson().getJSONArray("paths").getJSONObject(n - 1).getString("method");
        BundleException e = assertThrows(BundleException.class, () -> builder(engine).build());
        String m = e.getMessage();
        assertTrue(m, m.contains("the program lacks the method of manifest path " + ids.get(n - 1) + " (method '"
                + lastMethod + "')"));
        assertTrue(m, m.contains("it offers " + new TreeSet<String>(engine.methods())));
        assertTrue(m, m.contains("manifest.json and supernet.pte disagree"));
        assertTrue(m, m.contains("export the bundle again"));

        JSONObject json = Bundles.shippedJson();
        json.getJSONArray("paths").getJSONObject(1).put("method", "forward");
        Manifest renamed = Bundles.parse(json);
        e = assertThrows(BundleException.class,
                () -> SupernetRuntime.builder(renamed, RecordingEngine.withPaths(n)).build());
        assertTrue(e.getMessage(), e.getMessage().contains(ids.get(1) + " (method 'forward')"));
    }

    @Test
    public void batteryDrivesThePathAndSwitchesAreLogged() throws Exception {
        Bundles.BatteryTable t = Bundles.battery().atLeast(2, "batteryDrivesThePathAndSwitchesAreLogged");
        int n = t.size();
        String first = t.paths.get(0);
        String last = t.paths.get(n - 1);
        PushedBattery battery = new PushedBattery(100.0);
        ManualClock clock = new ManualClock(0.0);
        SupernetRuntime rt = builder(engine()).battery(battery).clock(clock).build();
        Prediction p = rt.predict(IMAGE, ONE);
        assertEquals(first, p.path());
        // The engine encodes the method in the logits.
        assertEquals(RecordingEngine.indexOf(first), p.logit(0, 9), 0f);
        clock.set(0.5);
        double low = Math.floor(t.thresholds[n - 2] / 2 * 10) / 10; // under the level above the last
        battery.push(low);
        p = rt.predict(IMAGE, ONE);
        assertEquals(last, p.path());
        assertEquals(RecordingEngine.indexOf(last), p.logit(0, 0), 0f);
        assertTrue(p.reason(), p.reason().startsWith("battery " + oneDecimal(low) + " % >= 0 %"));
        // Back above the level above, but not by the margin: stays.
        battery.push(Math.min(t.thresholds[n - 2] + t.hysteresisPct - 0.5, 100.0));
        assertEquals(last, rt.predict(IMAGE, ONE).path());
        List<PathSwitch> log = rt.switches();
        assertEquals(2, log.size());
        assertNull(log.get(0).fromPath());
        assertEquals(first, log.get(0).toPath());
        assertEquals(100.0, log.get(0).batteryPct(), 0.0);
        assertEquals(last, log.get(1).toPath());
        assertEquals(0.5, log.get(1).atH(), 0.0);
    }

    /**
     * The schedule walks every path of the bundle here, not its ladder: the point is when the
     * runtime asks its policy, which needs three slots that differ on any bundle of three paths.
     */
    @Test
    public void thePolicyIsAskedAgainAfterOneSecondOrANewReading() throws Exception {
        List<String> ids = Bundles.ids(3, "thePolicyIsAskedAgainAfterOneSecondOrANewReading");
        double every = Bundles.schedule().switchEveryH;
        ManualClock clock = new ManualClock(every - 0.5 / 3600); // half a second before the first switch
        PushedBattery battery = new PushedBattery(50.0);
        SupernetRuntime rt = builder(engine()).policy(new SchedulePolicy(ids, every)).battery(battery).clock(clock)
                .build();
        assertEquals(ids.get(0), rt.predict(IMAGE, ONE).path());
        clock.advanceSeconds(0.7); // past the switch, but the last decision is 0.7 s old: it stands
        assertEquals(ids.get(0), rt.predict(IMAGE, ONE).path());
        clock.advanceSeconds(0.35); // 1.05 s since the decision
        assertEquals(ids.get(1), rt.predict(IMAGE, ONE).path());

        clock.set(2 * every - 0.2 / 3600);
        assertEquals(ids.get(1), rt.predict(IMAGE, ONE).path());
        clock.advanceSeconds(0.3);
        battery.push(49.0); // a new reading: asked at once
        assertEquals(ids.get(2), rt.predict(IMAGE, ONE).path());
    }

    @Test
    public void switchToPinsUntilFollowPolicy() throws Exception {
        Bundles.BatteryTable t = Bundles.battery();
        String initial = t.pick(90.0, null);
        String pin = null; // a path the policy did not choose
        for (String id : Bundles.ids(2, "switchToPinsUntilFollowPolicy")) {
            if (pin == null && !id.equals(initial)) {
                pin = id;
            }
        }
        PushedBattery battery = new PushedBattery(90.0);
        SupernetRuntime rt = builder(engine()).battery(battery).clock(new ManualClock(0)).build();
        assertEquals(initial, rt.currentPath());
        rt.switchTo(pin, "user asked");
        battery.push(95.0);
        Prediction p = rt.predict(IMAGE, ONE);
        assertEquals(pin, p.path());
        assertEquals("pinned by switchTo (user asked)", p.reason());
        assertEquals("user asked", rt.switches().get(1).reason());
        rt.followPolicy();
        assertEquals(t.pick(95.0, pin), rt.predict(IMAGE, ONE).path());
        assertEquals(t.pick(95.0, pin), rt.currentPath());
        assertTrue(assertThrows(PolicyException.class, () -> rt.switchTo("not_a_path")).getMessage()
                .contains("no path 'not_a_path' in the bundle"));
    }

    @Test
    public void batchesRunOneImageAtATimeOnABatchOneProgram() throws Exception {
        RecordingEngine engine = engine();
        SupernetRuntime rt = builder(engine).battery(new PushedBattery(65.0)).build();
        Prediction p = rt.predict(new float[3 * 3072], new long[] {3, 3, 32, 32});
        assertEquals(3, p.batch());
        assertEquals(30, p.logits().length);
        assertEquals(3, engine.shapes().size());
        for (long[] shape : engine.shapes()) {
            assertArrayEquals(ONE, shape);
        }
        assertArrayEquals(new int[] {0, 0, 0}, p.labels());
        assertEquals(Bundles.rawJson().getJSONArray("classes").getString(0), p.labelNames()[2]);
        String last = Bundles.ids().get(Bundles.ids().size() - 1);
        float[] direct = rt.runPath(last, IMAGE, ONE);
        assertEquals(RecordingEngine.indexOf(last), direct[5], 0f);

        Prediction images = rt.predictImages(new byte[2 * 3072], 2);
        assertEquals(Bundles.battery().pick(65.0, null), images.path());
        assertEquals(2, images.batch());
    }

    @Test
    public void wrongInputAndMismatchedOutputAreExplained() throws Exception {
        RecordingEngine engine = engine();
        SupernetRuntime rt = builder(engine).build();
        assertThrows(InputException.class, () -> rt.predict(new float[7], ONE));
        assertThrows(InputException.class, () -> rt.predict(IMAGE, new long[] {1, 1, 32, 96}));
        engine.returnLength(1000);
        String m = assertThrows(IllegalStateException.class, () -> rt.predict(IMAGE, ONE)).getMessage();
        assertTrue(m, m.contains("the program returned 1000 values for 1 image(s); expected 1 x 10 class logits"));
    }

    @Test
    public void aPolicyChoosingAnUnknownPathIsRefused() throws Exception {
        String m = assertThrows(PolicyException.class,
                () -> builder(engine()).policy(new FixedPolicy("path_99")).build()).getMessage();
        assertTrue(m, m.contains("policy fixed chose path 'path_99', which the bundle lacks"));
    }

    @Test
    public void closeClosesTheEngine() throws Exception {
        RecordingEngine engine = engine();
        SupernetRuntime rt = builder(engine).build();
        rt.close();
        assertTrue(engine.isClosed());
        assertTrue(assertThrows(IllegalStateException.class, () -> rt.predict(IMAGE, ONE)).getMessage()
                .contains("closed"));
    }

    /**
     * Eight threads predict two-image batches (run as two engine calls each) while another thread
     * pushes battery levels across every threshold: every row of every result must come from the
     * path the result names, and every path of the battery table must have run.
     */
    @Test
    public void concurrentCallsNeverMixPaths() throws Exception {
        final PushedBattery battery = new PushedBattery(100.0);
        final SupernetRuntime rt = builder(RecordingEngine.slow(Bundles.ids().size())).battery(battery)
                .decideEverySeconds(0).build();
        final AtomicBoolean done = new AtomicBoolean(false);
        ExecutorService pool = Executors.newFixedThreadPool(9);
        Future<?> pusher = pool.submit(new Runnable() {
            @Override
            public void run() {
                Random random = new Random(7);
                while (!done.get()) {
                    battery.push(random.nextDouble() * 100.0);
                    Thread.yield();
                }
            }
        });
        List<Future<LinkedHashSet<String>>> workers = new ArrayList<Future<LinkedHashSet<String>>>();
        for (int t = 0; t < 8; t++) {
            workers.add(pool.submit(new Callable<LinkedHashSet<String>>() {
                @Override
                public LinkedHashSet<String> call() {
                    LinkedHashSet<String> seen = new LinkedHashSet<String>();
                    float[] two = new float[2 * 3072];
                    for (int i = 0; i < 400; i++) {
                        Prediction p = rt.predict(two, new long[] {2, 3, 32, 32});
                        float expected = RecordingEngine.indexOf(p.path());
                        for (float v : p.logits()) {
                            if (v != expected) {
                                throw new AssertionError("a row of " + p.path() + " came from path_" + (int) v);
                            }
                        }
                        seen.add(p.path());
                    }
                    return seen;
                }
            }));
        }
        LinkedHashSet<String> all = new LinkedHashSet<String>();
        for (Future<LinkedHashSet<String>> w : workers) {
            all.addAll(w.get(60, TimeUnit.SECONDS));
        }
        done.set(true);
        pusher.get(10, TimeUnit.SECONDS);
        pool.shutdown();
        assertEquals(new TreeSet<String>(Bundles.battery().atLeast(2, "concurrentCallsNeverMixPaths").paths),
                new TreeSet<String>(all));
        assertTrue(rt.switches().size() > 10);
    }
}
