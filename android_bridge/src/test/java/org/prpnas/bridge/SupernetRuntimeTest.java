package org.prpnas.bridge;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.List;
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

    @Test
    public void aMethodMissingFromTheProgramIsNamed() throws Exception {
        RecordingEngine engine = RecordingEngine.withPaths(4); // the program lacks path_4
        BundleException e = assertThrows(BundleException.class, () -> builder(engine).build());
        String m = e.getMessage();
        assertTrue(m, m.contains("the program lacks the method of manifest path path_4 (method 'path_4')"));
        assertTrue(m, m.contains("it offers [path_0, path_1, path_2, path_3]"));
        assertTrue(m, m.contains("manifest.json and supernet.pte disagree"));
        assertTrue(m, m.contains("export the bundle again"));

        JSONObject json = Bundles.shippedJson();
        json.getJSONArray("paths").getJSONObject(1).put("method", "forward");
        Manifest renamed = Bundles.parse(json);
        e = assertThrows(BundleException.class,
                () -> SupernetRuntime.builder(renamed, RecordingEngine.withPaths(5)).build());
        assertTrue(e.getMessage(), e.getMessage().contains("path_1 (method 'forward')"));
    }

    @Test
    public void batteryDrivesThePathAndSwitchesAreLogged() throws Exception {
        PushedBattery battery = new PushedBattery(100.0);
        ManualClock clock = new ManualClock(0.0);
        SupernetRuntime rt = builder(RecordingEngine.withPaths(5)).battery(battery).clock(clock).build();
        Prediction p = rt.predict(IMAGE, ONE);
        assertEquals("path_0", p.path());
        assertEquals(0f, p.logit(0, 9), 0f); // the engine encodes the method in the logits
        clock.set(0.5);
        battery.push(15.0);
        p = rt.predict(IMAGE, ONE);
        assertEquals("path_4", p.path());
        assertEquals(4f, p.logit(0, 0), 0f);
        assertTrue(p.reason(), p.reason().startsWith("battery 15.0 % >= 0 %"));
        battery.push(21.0); // below 20 + 3: stays
        assertEquals("path_4", rt.predict(IMAGE, ONE).path());
        List<PathSwitch> log = rt.switches();
        assertEquals(2, log.size());
        assertNull(log.get(0).fromPath());
        assertEquals("path_0", log.get(0).toPath());
        assertEquals(100.0, log.get(0).batteryPct(), 0.0);
        assertEquals("path_4", log.get(1).toPath());
        assertEquals(0.5, log.get(1).atH(), 0.0);
    }

    @Test
    public void thePolicyIsAskedAgainAfterOneSecondOrANewReading() throws Exception {
        ManualClock clock = new ManualClock(5.0 - 0.5 / 3600); // half a second before the 5 h switch
        PushedBattery battery = new PushedBattery(50.0);
        SupernetRuntime rt = builder(RecordingEngine.withPaths(5)).policy("schedule").battery(battery).clock(clock)
                .build();
        assertEquals("path_0", rt.predict(IMAGE, ONE).path());
        clock.advanceSeconds(0.7); // past 5 h, but the last decision is 0.7 s old: it stands
        assertEquals("path_0", rt.predict(IMAGE, ONE).path());
        clock.advanceSeconds(0.35); // 1.05 s since the decision
        assertEquals("path_1", rt.predict(IMAGE, ONE).path());

        clock.set(10.0 - 0.2 / 3600);
        assertEquals("path_1", rt.predict(IMAGE, ONE).path());
        clock.advanceSeconds(0.3);
        battery.push(49.0); // a new reading: asked at once
        assertEquals("path_2", rt.predict(IMAGE, ONE).path());
    }

    @Test
    public void switchToPinsUntilFollowPolicy() throws Exception {
        PushedBattery battery = new PushedBattery(90.0);
        SupernetRuntime rt = builder(RecordingEngine.withPaths(5)).battery(battery).clock(new ManualClock(0)).build();
        rt.switchTo("path_3", "user asked");
        battery.push(95.0);
        Prediction p = rt.predict(IMAGE, ONE);
        assertEquals("path_3", p.path());
        assertEquals("pinned by switchTo (user asked)", p.reason());
        assertEquals("user asked", rt.switches().get(1).reason());
        rt.followPolicy();
        assertEquals("path_0", rt.predict(IMAGE, ONE).path());
        assertEquals("path_0", rt.currentPath());
        assertTrue(assertThrows(PolicyException.class, () -> rt.switchTo("path_5")).getMessage()
                .contains("no path 'path_5' in the bundle"));
    }

    @Test
    public void batchesRunOneImageAtATimeOnABatchOneProgram() throws Exception {
        RecordingEngine engine = RecordingEngine.withPaths(5);
        SupernetRuntime rt = builder(engine).battery(new PushedBattery(65.0)).build();
        Prediction p = rt.predict(new float[3 * 3072], new long[] {3, 3, 32, 32});
        assertEquals(3, p.batch());
        assertEquals(30, p.logits().length);
        assertEquals(3, engine.shapes().size());
        for (long[] shape : engine.shapes()) {
            assertArrayEquals(ONE, shape);
        }
        assertArrayEquals(new int[] {0, 0, 0}, p.labels());
        assertEquals("airplane", p.labelNames()[2]);
        float[] direct = rt.runPath("path_2", IMAGE, ONE);
        assertEquals(2f, direct[5], 0f);

        Prediction images = rt.predictImages(new byte[2 * 3072], 2);
        assertEquals("path_1", images.path());
        assertEquals(2, images.batch());
    }

    @Test
    public void wrongInputAndMismatchedOutputAreExplained() throws Exception {
        RecordingEngine engine = RecordingEngine.withPaths(5);
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
                () -> builder(RecordingEngine.withPaths(5)).policy(new FixedPolicy("path_99")).build()).getMessage();
        assertTrue(m, m.contains("policy fixed chose path 'path_99', which the bundle lacks"));
    }

    @Test
    public void closeClosesTheEngine() throws Exception {
        RecordingEngine engine = RecordingEngine.withPaths(5);
        SupernetRuntime rt = builder(engine).build();
        rt.close();
        assertTrue(engine.isClosed());
        assertTrue(assertThrows(IllegalStateException.class, () -> rt.predict(IMAGE, ONE)).getMessage()
                .contains("closed"));
    }

    /**
     * Eight threads predict two-image batches (run as two engine calls each) while another thread
     * pushes battery levels across every threshold: every row of every result must come from the
     * path the result names, and every path must have run.
     */
    @Test
    public void concurrentCallsNeverMixPaths() throws Exception {
        final PushedBattery battery = new PushedBattery(100.0);
        final SupernetRuntime rt = builder(RecordingEngine.slow(5)).battery(battery).decideEverySeconds(0).build();
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
        assertEquals(new TreeSet<String>(Arrays.asList("path_0", "path_1", "path_2", "path_3", "path_4")),
                new TreeSet<String>(all));
        assertTrue(rt.switches().size() > 10);
    }
}
