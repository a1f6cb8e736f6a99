package org.prpnas.bridge;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import java.util.Arrays;
import java.util.List;
import org.json.JSONArray;
import org.json.JSONObject;
import org.junit.Test;

/** The ladder rule, case by case (the conformance table checks it against Python on random fronts). */
public class LadderTest {
    private static final List<String> IDS = Arrays.asList("a", "b", "c", "d", "e");

    @Test
    public void ladderDropsDominatedAndTiedPaths() {
        // b is dominated by a (less accurate, dearer); d ties c on accuracy and costs more; e
        // duplicates c exactly and comes later.
        double[] accuracy = {50, 49, 48, 48, 48};
        double[] cost = {2, 3, 1, 1.5, 1};
        assertEquals(Arrays.asList("a", "c"), Ladder.of(IDS, accuracy, cost));
        // Equal cost, less accurate: not strictly cheaper, so off the ladder.
        assertEquals(Arrays.asList("a"), Ladder.of(IDS.subList(0, 2), new double[] {50, 40}, new double[] {1, 1}));
        // Input order does not matter, only (accuracy, cost): the most accurate comes first.
        assertEquals(Arrays.asList("b", "a"), Ladder.of(IDS.subList(0, 2), new double[] {40, 50}, new double[] {1, 2}));
    }

    /** The shipped manifest at the ladder schema, its tables as they are. */
    private static JSONObject atLadderSchema() throws Exception {
        return Bundles.shippedJson().put("schema_version", Ladder.SCHEMA_VERSION);
    }

    private static JSONArray levels(JSONObject json) throws Exception {
        return json.getJSONObject("policies").getJSONObject("battery").getJSONArray("levels");
    }

    /** The manifest with both tables set to {@code ids} (thresholds evenly spaced). */
    private static JSONObject withTables(JSONObject json, List<String> ids) throws Exception {
        JSONArray levels = new JSONArray();
        JSONArray order = new JSONArray();
        for (int i = 0; i < ids.size(); i++) {
            double pct = Math.round(10000.0 * (ids.size() - 1 - i) / ids.size()) / 100.0;
            levels.put(new JSONObject().put("min_battery_pct", pct).put("path", ids.get(i)));
            order.put(ids.get(i));
        }
        json.getJSONObject("policies").getJSONObject("battery").put("levels", levels);
        json.getJSONObject("policies").getJSONObject("schedule").put("order", order);
        return json;
    }

    @Test
    public void exportedLadderIsAcceptedAndFollowed() throws Exception {
        JSONObject json = atLadderSchema();
        Manifest shipped = Bundles.shippedManifest();
        List<String> ladder = Ladder.of(shipped);
        Manifest m = Bundles.parse(withTables(json, ladder));
        assertEquals(ladder, Ladder.of(m));
        BatteryPolicy battery = (BatteryPolicy) Policies.fromManifest(m, "battery");
        assertEquals(ladder, battery.paths());
        // Draining from 100 % to 0 never moves to a dearer path.
        double last = Double.POSITIVE_INFINITY;
        String current = null;
        for (int k = 0; k <= 400; k++) {
            current = battery.decide(new PolicyContext(100.0 - 0.25 * k, 0, current)).path();
            double cost = m.path(current).energyMj();
            assertTrue(current + " at " + (100.0 - 0.25 * k) + " %", cost <= last);
            last = cost;
        }
    }

    @Test
    public void aDominatedPathOnATableIsRefused() throws Exception {
        JSONObject json = atLadderSchema();
        Manifest shipped = Bundles.shippedManifest();
        List<String> all = shipped.ids();
        List<String> ladder = Ladder.of(shipped);
        String dominated = null;
        for (String id : all) {
            if (!ladder.contains(id)) {
                dominated = id;
                break;
            }
        }
        // Any front: the table that walks every path breaks the rule exactly when a path is off the ladder.
        withTables(json, all);
        if (dominated == null) {
            levels(json).getJSONObject(0).put("path", all.get(all.size() - 1)); // cheapest first: not monotone
        }
        BundleException e = assertThrows(BundleException.class, () -> Bundles.parse(json));
        String m = e.getMessage();
        assertTrue(m, m.contains("manifest.policies.battery.levels is not a ladder (each level strictly cheaper"));
        assertTrue(m, m.contains("the ladder by energy_mj is " + Manifest.join(ladder, ", ")));
        assertTrue(m, m.contains("export the bundle again"));
        if (dominated != null) {
            assertTrue(m, m.contains(dominated + " ("));
            assertTrue(m, m.contains(") is dominated by "));
            assertTrue(m, m.contains("manifest.policies.schedule.order is not a ladder"));
        }
    }

    @Test
    public void aLevelThatDoesNotCostLessIsRefused() throws Exception {
        JSONObject json = atLadderSchema();
        List<String> ladder = Ladder.of(Bundles.shippedManifest());
        List<String> twice = Arrays.asList(ladder.get(0), ladder.get(0));
        String m = assertThrows(BundleException.class, () -> Bundles.parse(withTables(json, twice))).getMessage();
        assertTrue(m, m.contains(ladder.get(0) + " above it"));
        assertTrue(m, m.contains("does not cost less than"));
    }

    @Test
    public void olderSchemasLoadTheirTablesAsTheyAre() throws Exception {
        JSONObject json = withTables(Bundles.shippedJson().put("schema_version", 1), Bundles.shippedManifest().ids());
        assertEquals(Bundles.shippedManifest().ids(), ((BatteryPolicy) Policies.fromManifest(Bundles.parse(json),
                "battery")).paths());
    }

    @Test
    public void theObjectivesCostIsRequired() throws Exception {
        JSONObject json = atLadderSchema().put("objective", "latency");
        for (int i = 0; i < json.getJSONArray("paths").length(); i++) {
            json.getJSONArray("paths").getJSONObject(i).put("latency_ms", JSONObject.NULL);
        }
        String m = assertThrows(BundleException.class, () -> Bundles.parse(json)).getMessage();
        assertTrue(m, m.contains("manifest.paths[0].latency_ms is None, but the objective is latency"));
        json.put("objective", "size");
        m = assertThrows(BundleException.class, () -> Bundles.parse(json)).getMessage();
        assertTrue(m, m.contains("manifest.objective must be one of ['energy', 'latency']"));
    }

    @Test
    public void pythonStyleNumbers() {
        assertEquals("0.0251462", Ladder.g(0.025146213200000003));
        assertEquals("46.6", Ladder.g(46.6));
        assertEquals("1e-05", Ladder.g(1e-5));
        assertEquals("0", Ladder.g(0.0));
    }
}
