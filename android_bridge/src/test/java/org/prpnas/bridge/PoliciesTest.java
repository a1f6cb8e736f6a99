package org.prpnas.bridge;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.json.JSONObject;
import org.junit.Test;

/** The policies' rules, one by one (the conformance table checks them against Python in bulk). */
public class PoliciesTest {
    private static final List<String> IDS = Arrays.asList("path_0", "path_1", "path_2", "path_3", "path_4");

    private static String pick(Policy p, Double battery, double hours, String current) {
        return p.decide(new PolicyContext(battery, hours, current)).path();
    }

    private static BatteryPolicy shippedBattery() throws BundleException {
        return (BatteryPolicy) Policies.fromManifest(Bundles.shippedManifest(), "battery");
    }

    @Test
    public void batteryThresholdsWithHysteresis() throws Exception {
        BatteryPolicy p = shippedBattery(); // 80 / 60 / 40 / 20 / 0, hysteresis 3
        assertEquals(3.0, p.hysteresisPct(), 0.0);
        assertEquals("path_0", pick(p, null, 0, "path_4")); // no reading: most accurate
        assertEquals("path_0", pick(p, 80.0, 0, null));
        assertEquals("path_1", pick(p, 79.99, 0, null));
        assertEquals("path_1", pick(p, 79.99, 0, "path_0")); // going down: at once
        assertEquals("path_4", pick(p, 0.0, 0, "path_0"));
        assertEquals("path_1", pick(p, 82.99, 0, "path_1")); // going up: needs 80 + 3
        assertEquals("path_0", pick(p, 83.0, 0, "path_1"));
        assertEquals("path_2", pick(p, 62.9, 0, "path_4")); // up only as far as the margin allows
        assertEquals("path_2", pick(p, 43.0, 0, "path_3"));
        assertEquals("path_4", pick(p, 22.5, 0, "path_4"));
        assertEquals("path_3", pick(p, 23.0, 0, "path_4"));
        assertEquals("path_2", pick(p, 50.0, 0, "path_9")); // a current path outside the table
    }

    @Test
    public void batteryTableIsValidated() {
        List<String> two = Arrays.asList("a", "b");
        assertTrue(assertThrows(PolicyException.class, () -> new BatteryPolicy(new double[] {10, 20}, two, 3))
                .getMessage().contains("must descend"));
        assertTrue(assertThrows(PolicyException.class, () -> new BatteryPolicy(new double[] {50, 5}, two, 3))
                .getMessage().contains("must start at 0 %, got 5"));
        assertTrue(assertThrows(PolicyException.class, () -> new BatteryPolicy(new double[] {50, 0}, two, -1))
                .getMessage().contains("hysteresis must be >= 0"));
        assertThrows(PolicyException.class, () -> new BatteryPolicy(new double[0], Arrays.<String>asList(), 3));
        // A negative reading (Python raises StopIteration there) runs the cheapest path.
        assertEquals("b", pick(new BatteryPolicy(new double[] {50, 0}, two, 3), -1.0, 0, null));
    }

    @Test
    public void scheduleUsesPythonFloorDivision() throws Exception {
        SchedulePolicy p = (SchedulePolicy) Policies.fromManifest(Bundles.shippedManifest(), "schedule");
        assertEquals("path_0", pick(p, 50.0, 0.0, null));
        assertEquals("path_0", pick(p, 50.0, 4.999, null));
        assertEquals("path_1", pick(p, 50.0, 5.0, null));
        assertEquals("path_4", pick(p, 50.0, 20.0, null));
        assertEquals("path_4", pick(p, 50.0, 1000.0, null)); // then stays on the last
        assertEquals("path_0", pick(p, 50.0, -3.0, null));
        assertEquals(9.0, SchedulePolicy.floorDiv(1.0, 0.1), 0.0); // Python: 1.0 // 0.1 == 9.0
        assertEquals(4.0, SchedulePolicy.floorDiv(0.5, 0.1), 0.0);
        assertEquals(2.0, SchedulePolicy.floorDiv(10.0, 5.0), 0.0);
        assertEquals(-1.0, SchedulePolicy.floorDiv(-0.5, 5.0), 0.0);
        assertEquals(1.0, SchedulePolicy.floorDiv(-7.0, -5.0), 0.0);
        assertThrows(PolicyException.class, () -> new SchedulePolicy(IDS, 0.0));
        assertThrows(PolicyException.class, () -> new SchedulePolicy(Arrays.<String>asList(), 1.0));
    }

    @Test
    public void energyBudgetPicksTheMostAccuratePathThatLasts() {
        Map<String, Double> energy = new LinkedHashMap<String, Double>();
        energy.put("big", 40.0);
        energy.put("mid", 20.0);
        energy.put("small", 5.0);
        energy.put("tiny", 9.0); // listed last but not the cheapest
        PowerModel power = new PowerModel(3000, 3.85, 0.5, 30.0);
        EnergyBudgetPolicy p = new EnergyBudgetPolicy(energy, power, 24.0);
        assertEquals(3000 * 3.6 * 3.85, power.capacityJ(), 0.0);
        assertEquals(0.5 + 30 * 40.0 * 1e-3, power.powerW(40.0), 0.0);
        double bigAtFull = p.hoursLeft("big", 100.0); // 41580 J / 1.7 W = 6.79 h
        assertEquals(41580.0 / 1.7 / 3600.0, bigAtFull, 1e-12);
        assertEquals("big", pick(p, 100.0, 24.0 - bigAtFull + 1e-9, null));
        assertEquals("mid", pick(p, 100.0, 24.0 - bigAtFull - 0.01, null));
        assertEquals("small", pick(p, 100.0, 0.0, null)); // nothing lasts 24 h: the cheapest
        assertEquals("big", pick(p, null, 0.0, null));
        assertEquals("big", pick(p, 1.0, 30.0, null)); // past the target everything "lasts"
        assertThrows(PolicyException.class, () -> new PowerModel(0, 3.85, 1, 1));
    }

    @Test
    public void shippedEnergyBudgetUsesPixel3Power() throws Exception {
        EnergyBudgetPolicy p = (EnergyBudgetPolicy) Policies.fromManifest(Bundles.shippedManifest(), "energy-budget");
        assertEquals(2915 * 3.6 * 3.85, p.power().capacityJ(), 0.0);
        assertEquals(24.0, p.targetH(), 0.0);
        // At 5 % no path lasts the 24 h: the cheapest by energy runs.
        Manifest m = Bundles.shippedManifest();
        String cheapest = m.paths().get(0).id();
        double least = m.paths().get(0).energyMj();
        for (PathInfo info : m.paths()) {
            if (info.energyMj() < least) {
                least = info.energyMj();
                cheapest = info.id();
            }
        }
        assertEquals(cheapest, pick(p, 5.0, 0.0, null));
    }

    @Test
    public void fromManifestNamesAndErrors() throws Exception {
        Manifest m = Bundles.shippedManifest();
        assertEquals("battery", Policies.fromManifest(m).name());
        assertEquals("path_0", pick(Policies.fromManifest(m, "fixed"), 1.0, 0, null));
        assertEquals("path_3", pick(Policies.fromManifest(m, "fixed", null, 24, "path_3"), 1.0, 0, null));
        assertTrue(assertThrows(PolicyException.class, () -> Policies.fromManifest(m, "greedy")).getMessage()
                .contains("unknown policy 'greedy'; policies are: battery, schedule, energy-budget, fixed"));
        assertTrue(assertThrows(PolicyException.class, () -> Policies.fromManifest(m, "fixed", null, 24, "path_7"))
                .getMessage().contains("policy names path 'path_7', which the bundle lacks"));

        JSONObject json = m.toJson();
        json.getJSONObject("policies").getJSONObject("schedule").getJSONArray("order").put(1, "path_8");
        json.getJSONObject("policies").remove("battery");
        json.getJSONObject("policies").put("default", "schedule");
        Manifest edited = Bundles.parse(json);
        assertTrue(assertThrows(PolicyException.class, () -> Policies.fromManifest(edited)).getMessage()
                .contains("'path_8'"));
        assertTrue(assertThrows(PolicyException.class, () -> Policies.fromManifest(edited, "battery")).getMessage()
                .contains("no policies.battery table"));

        json = Bundles.latencyObjectiveJson(); // energy may be null where it is not the objective
        json.getJSONArray("paths").getJSONObject(2).put("energy_mj", JSONObject.NULL);
        Manifest unpriced = Bundles.parse(json);
        assertTrue(assertThrows(PolicyException.class, () -> Policies.fromManifest(unpriced, "energy-budget"))
                .getMessage().contains("the energy-budget policy needs it"));
    }

    @Test
    public void reasonsAreReadable() throws Exception {
        Decision d = shippedBattery().decide(new PolicyContext(61.0, 0, "path_2"));
        assertEquals("path_2", d.path());
        assertEquals("battery 61.0 % >= 40 %: stay on path_2", d.reason());
        assertEquals("80", Fmt.g(80.0));
        assertEquals("12.25", Fmt.g(12.25));
    }
}
