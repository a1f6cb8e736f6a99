package org.prpnas.bridge;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.json.JSONObject;
import org.junit.Test;

/** The policies' rules, one by one (the conformance table checks them against Python in bulk). */
public class PoliciesTest {
    private static String pick(Policy p, Double battery, double hours, String current) {
        return p.decide(new PolicyContext(battery, hours, current)).path();
    }

    private static BatteryPolicy shippedBattery() throws BundleException {
        return (BatteryPolicy) Policies.fromManifest(Bundles.shippedManifest(), "battery");
    }

    /**
     * The shipped table's rule at every level: its thresholds exactly, a hair below them, and the
     * hysteresis band above them, each expected pick read off the table (so any bundle's table).
     */
    @Test
    public void batteryThresholdsWithHysteresis() throws Exception {
        Bundles.BatteryTable t = Bundles.battery().atLeast(2, "batteryThresholdsWithHysteresis");
        List<String> ids = t.paths;
        int n = t.size();
        double h = t.hysteresisPct;
        BatteryPolicy p = shippedBattery();
        assertEquals(ids, p.paths());
        assertEquals(h, p.hysteresisPct(), 0.0);
        String first = ids.get(0);
        String last = ids.get(n - 1);
        assertEquals(first, pick(p, null, 0, last)); // no reading: most accurate
        assertEquals(first, pick(p, 100.0, 0, null));
        assertEquals(last, pick(p, 0.0, 0, first)); // empty: the cheapest, at once
        for (int i = 0; i < n; i++) {
            double at = t.thresholds[i];
            assertEquals("at " + at + " %", ids.get(i), pick(p, at, 0, null));
            if (i + 1 < n) { // a hair below: the next level down, at once, from wherever above
                assertEquals(ids.get(i + 1), pick(p, at - 0.01, 0, null));
                assertEquals(ids.get(i + 1), pick(p, at - 0.01, 0, first));
                assertEquals(ids.get(i + 1), pick(p, at - 0.01, 0, ids.get(i)));
            }
            if (i > 0) { // going up from level i needs the threshold above plus the margin
                double above = t.thresholds[i - 1];
                assertEquals("up from " + ids.get(i), ids.get(i), pick(p, above + h - 0.01, 0, ids.get(i)));
                assertEquals("up from " + ids.get(i), ids.get(i - 1), pick(p, above + h + 0.001, 0, ids.get(i)));
            }
        }
        // From the bottom, up only as far as the margin allows: one level below the top.
        assertEquals(ids.get(1), pick(p, t.thresholds[0] + h - 0.01, 0, last));
        // A current path outside the table: the level the battery reaches, no margin.
        double between = (t.thresholds[0] + t.thresholds[1]) / 2;
        assertEquals(ids.get(1), pick(p, between, 0, "not_a_path"));
        for (double pct = 0.0; pct <= 100.0; pct += 0.5) { // and the rule, read off the table
            for (String current : ids) {
                assertEquals(pct + " % from " + current, t.pick(pct, current), pick(p, pct, 0, current));
            }
        }
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
        Bundles.ScheduleTable t = Bundles.schedule();
        List<String> order = t.order;
        double every = t.switchEveryH;
        assertEquals(order, p.order());
        assertEquals(every, p.switchEveryH(), 0.0);
        for (int k = 0; k < order.size(); k++) { // each slot from its first hour to just before the next
            assertEquals(order.get(k), pick(p, 50.0, k * every, null));
            assertEquals(order.get(k), pick(p, 50.0, (k + 1) * every - 0.001, null));
        }
        assertEquals(order.get(order.size() - 1), pick(p, 50.0, 1000.0, null)); // then stays on the last
        assertEquals(order.get(0), pick(p, 50.0, -3.0, null));
        assertEquals(9.0, SchedulePolicy.floorDiv(1.0, 0.1), 0.0); // Python: 1.0 // 0.1 == 9.0
        assertEquals(4.0, SchedulePolicy.floorDiv(0.5, 0.1), 0.0);
        assertEquals(2.0, SchedulePolicy.floorDiv(10.0, 5.0), 0.0);
        assertEquals(-1.0, SchedulePolicy.floorDiv(-0.5, 5.0), 0.0);
        assertEquals(1.0, SchedulePolicy.floorDiv(-7.0, -5.0), 0.0);
        assertThrows(PolicyException.class, () -> new SchedulePolicy(Arrays.asList("a", "b"), 0.0));
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
        List<String> ids = Bundles.ids(2, "fromManifestNamesAndErrors");
        String named = ids.get(ids.size() - 1);
        assertEquals(Bundles.rawJson().getJSONObject("policies").optString("default", "battery"),
                Policies.fromManifest(m).name());
        assertEquals(ids.get(0), pick(Policies.fromManifest(m, "fixed"), 1.0, 0, null));
        assertEquals(named, pick(Policies.fromManifest(m, "fixed", null, 24, named), 1.0, 0, null));
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
        json.getJSONArray("paths").getJSONObject(ids.size() - 1).put("energy_mj", JSONObject.NULL);
        Manifest unpriced = Bundles.parse(json);
        assertTrue(assertThrows(PolicyException.class, () -> Policies.fromManifest(unpriced, "energy-budget"))
                .getMessage().contains("the energy-budget policy needs it"));
    }

    @Test
    public void reasonsAreReadable() throws Exception {
        Bundles.BatteryTable t = Bundles.battery().atLeast(2, "reasonsAreReadable");
        BatteryPolicy p = shippedBattery();
        int n = t.size();
        String last = t.paths.get(n - 1);
        // The last level starts at 0 %: staying on it below the level above (one decimal, as Python).
        double low = Math.floor(t.thresholds[n - 2] / 2 * 10) / 10;
        Decision stay = p.decide(new PolicyContext(low, 0, last));
        assertEquals(last, stay.path());
        assertEquals("battery " + String.format(Locale.ROOT, "%.1f", low) + " % >= 0 %: stay on " + last,
                stay.reason());
        Decision top = p.decide(new PolicyContext(100.0, 0, null));
        assertEquals("battery 100.0 % >= " + Fmt.g(t.thresholds[0]) + " %: " + t.paths.get(0), top.reason());
        assertEquals("no battery reading: most accurate path", p.decide(new PolicyContext(null, 0, last)).reason());
        assertEquals("80", Fmt.g(80.0));
        assertEquals("12.25", Fmt.g(12.25));
        assertEquals("33.33", Fmt.g(33.33));
    }
}
