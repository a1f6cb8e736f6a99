package org.prpnas.bridge;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNotNull;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;

import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.Test;

/**
 * Energy attributed to paths from windows of readings of a fake BatteryManager whose energy counter
 * falls as a phone's would: 3 W of baseline, plus each path's energy per image.
 */
public class PathEnergyTest {
    private static final double NWH_PER_J = 1.0 / 3.6e-6;
    private static final double STEP_S = 0.1;

    /** Runs {@code turns} of 12 s each ("idle" or a path at one image per step) and returns the meter's windows. */
    private static PathEnergy drive(List<String> ids, double[] mjPerImage, List<String> turns, double noiseJ) {
        BatteryEnergyMeterTest.FakeBatteryManager bm = new BatteryEnergyMeterTest.FakeBatteryManager();
        double counterNwh = 40e9;
        bm.energyCounterNwh = (long) counterNwh;
        ManualClock clock = new ManualClock(0.0);
        PathEnergy energy = new PathEnergy(ids, new BatteryEnergyMeter(bm, clock), clock);
        Random random = new Random(0);
        double t = 0;
        for (String turn : turns) {
            for (int step = 0; step < 120; step++) {
                t += STEP_S;
                clock.set(t / 3600.0);
                double joules = 3.0 * STEP_S + noiseJ * random.nextGaussian();
                int k = ids.indexOf(turn);
                if (k >= 0) {
                    joules += mjPerImage[k] * 1e-3;
                }
                counterNwh -= joules * NWH_PER_J;
                bm.energyCounterNwh = Math.round(counterNwh);
                if (k >= 0) {
                    energy.record(turn, 1);
                } else {
                    energy.tick();
                }
            }
        }
        return energy;
    }

    @Test
    public void energyPerImageIsRecoveredWithItsInterval() {
        List<String> ids = Arrays.asList("path_0", "path_1", "path_2");
        double[] truth = {50.0, 20.0, 8.0};
        String[] round = {"idle", "path_0", "path_1", "path_2"};
        List<String> turns = new java.util.ArrayList<String>();
        for (int r = 0; r < 6; r++) {
            turns.addAll(Arrays.asList(round));
        }
        PathEnergy energy = drive(ids, truth, turns, 0.002);
        PathEnergy.Attribution fit = energy.attribute();
        assertNotNull(fit);
        assertTrue("windows " + fit.windows, fit.windows >= 25);
        assertTrue(fit.confident(0.5));
        assertEquals(3.0, fit.baselineW, 0.15);
        for (int k = 0; k < ids.size(); k++) {
            double e = fit.energyMj.get(ids.get(k));
            double ci = fit.ci95Mj.get(ids.get(k));
            assertTrue(ids.get(k) + ": " + e + " +- " + ci, Math.abs(e - truth[k]) <= Math.max(ci, 0.05 * truth[k]));
            assertTrue(ci > 0 && ci < 0.5 * truth[k]);
        }
    }

    @Test
    public void windowsThatCannotSeparateThePathsGiveNothing() {
        List<String> ids = Arrays.asList("a", "b");
        List<String> onlyA = java.util.Collections.nCopies(10, "a");
        PathEnergy energy = drive(ids, new double[] {4.0, 1.0}, onlyA, 0.0);
        assertTrue(energy.windows() >= 8);
        assertNull("b never ran", energy.attribute());
    }

    @Test
    public void theRuntimeFeedsItsCallsToTheMeterWindows() throws Exception {
        Manifest manifest = Bundles.shippedManifest();
        BatteryEnergyMeterTest.FakeBatteryManager bm = new BatteryEnergyMeterTest.FakeBatteryManager();
        bm.energyCounterNwh = 10_000_000_000L;
        ManualClock clock = new ManualClock(0.0);
        SupernetRuntime rt = SupernetRuntime.builder(manifest, RecordingEngine.withPaths(manifest.ids().size()))
                .clock(clock)
                .energyMeter(new BatteryEnergyMeter(bm, clock))
                .build();
        long[] one = manifest.input().batchShape(1);
        float[] image = new float[manifest.input().imageSize()];
        for (int s = 1; s <= 45; s++) {
            clock.set(s / 3600.0);
            bm.energyCounterNwh -= 1_000_000L; // 3.6 J a second
            rt.predict(image, one);
        }
        assertEquals(4, rt.energy().windows()); // 10 s windows over 45 s of calls
        assertNull(SupernetRuntime.builder(manifest, RecordingEngine.withPaths(manifest.ids().size())).build()
                .energy());
    }
}
