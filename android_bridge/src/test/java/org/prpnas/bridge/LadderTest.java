package org.prpnas.bridge;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
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

    /**
     * The shipped manifest at the ladder schema, its tables as they are, without its paired tests: the
     * ladder is then the non-dominated paths (the tests that need paired tests add their own).
     */
    private static JSONObject atLadderSchema() throws Exception {
        JSONObject json = Bundles.shippedJson();
        json.remove("ladder_tests");
        return json.put("schema_version", Ladder.SCHEMA_VERSION);
    }

    /** {@link #atLadderSchema()} parsed. */
    private static Manifest untestedShipped() throws Exception {
        return Bundles.parse(atLadderSchema());
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
        Manifest shipped = untestedShipped();
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
        Manifest shipped = untestedShipped();
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
        List<String> ladder = Ladder.of(untestedShipped());
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

    /**
     * The shipped manifest at the ladder schema with four paths: path_0 (50 %, 3 mJ), path_1 (49 %,
     * 2 mJ), path_2 (48 %, 1 mJ) and path_3 (47 %, 2 mJ, dominated by path_1). The plain ladder is
     * path_0, path_1, path_2.
     */
    private static JSONObject fourPaths() throws Exception {
        JSONObject json = atLadderSchema().put("objective", "energy");
        JSONObject template = json.getJSONArray("paths").getJSONObject(0);
        template.remove("onnx_initializers");
        double[] accuracy = {50, 49, 48, 47};
        double[] cost = {3, 2, 1, 2};
        JSONArray paths = new JSONArray();
        for (int k = 0; k < accuracy.length; k++) {
            JSONObject p = new JSONObject(template.toString());
            paths.put(p.put("id", "path_" + k).put("method", "path_" + k).put("accuracy", accuracy[k])
                    .put("energy_mj", cost[k]));
        }
        return json.put("paths", paths);
    }

    private static JSONObject test(String path, String cheaper, Object moreAccurate) throws Exception {
        return new JSONObject().put("path", path).put("cheaper", cheaper).put("only_path_right", 12)
                .put("only_cheaper_right", 3).put("p_value", 0.0176).put("more_accurate", moreAccurate);
    }

    /**
     * The tests of {@link #fourPaths}: path_0 beat path_1 and path_2, but path_1 did not beat
     * path_2 (one record says so, the others are malformed and count as no passed test).
     */
    private static JSONObject withTests(JSONObject json) throws Exception {
        JSONArray pairs = new JSONArray().put(test("path_0", "path_1", true)).put(test("path_0", "path_2", true))
                .put(test("path_1", "path_2", false)).put(test("path_1", "path_2", "true"))
                .put(test("path_1", "path_2", 1)).put(new JSONObject().put("path", "path_1")
                        .put("more_accurate", true)).put(new JSONArray().put("path_1").put("path_2").put(true))
                .put(test("path_3", "path_2", true));
        return json.put("ladder_tests", new JSONObject().put("method", "exact McNemar test, one-sided")
                .put("alpha", 0.05).put("images", 500).put("split", "held-out validation images")
                .put("pairs", pairs));
    }

    @Test
    public void aPathThatFailsItsTestLeavesTheLadder() throws Exception {
        List<String> plain = Arrays.asList("path_0", "path_1", "path_2");
        List<String> tested = Arrays.asList("path_0", "path_2");
        Manifest m = Bundles.parse(withTables(withTests(fourPaths()), tested));
        Set<List<String>> passed = new HashSet<List<String>>(Arrays.asList(Ladder.pair("path_0", "path_1"),
                Ladder.pair("path_0", "path_2"), Ladder.pair("path_3", "path_2")));
        assertEquals(passed, m.passedPairs());
        // path_1 is on the non-dominated ladder, but no better than the cheaper path_2 on the images.
        assertEquals(tested, Ladder.of(m));
        assertEquals(tested, ((BatteryPolicy) Policies.fromManifest(m, "battery")).paths());
        List<String> ids = Arrays.asList("path_0", "path_1", "path_2", "path_3");
        double[] accuracy = {50, 49, 48, 47};
        double[] cost = {3, 2, 1, 2};
        assertEquals(plain, Ladder.of(ids, accuracy, cost));
        assertEquals(tested, Ladder.of(ids, accuracy, cost, passed));
        // Walking up from the cheapest: path_0 needs a pass against path_1 only while path_1 is kept.
        Set<List<String>> onlyNeighbours = new HashSet<List<String>>(Arrays.asList(Ladder.pair("path_0",
                "path_1"), Ladder.pair("path_1", "path_2")));
        assertEquals(Arrays.asList("path_1", "path_2"), Ladder.of(ids, accuracy, cost, onlyNeighbours));
        assertEquals(Arrays.asList("path_2"), Ladder.of(ids, accuracy, cost, new HashSet<List<String>>()));
    }

    @Test
    public void aTableListingAPathWithoutAPassedTestIsRefused() throws Exception {
        List<String> plain = Arrays.asList("path_0", "path_1", "path_2");
        String m = assertThrows(BundleException.class, () -> Bundles.parse(withTables(withTests(fourPaths()),
                plain))).getMessage();
        String problem = "path_1 is not measurably more accurate than cheaper path_2 (manifest.ladder_tests)";
        assertTrue(m, m.contains("manifest.policies.battery.levels is not a ladder (each level strictly cheaper, no "
                + "dominated path): " + problem + "; the ladder by energy_mj is path_0, path_2: export the bundle "
                + "again or list only those paths"));
        assertTrue(m, m.contains("manifest.policies.schedule.order is not a ladder"));
        assertTrue(m, !m.contains("path_0 is not measurably"));
        // One table alone: the schedule walking path_1 -> path_2.
        JSONObject json = withTables(withTests(fourPaths()), Arrays.asList("path_0", "path_2"));
        json.getJSONObject("policies").getJSONObject("schedule").put("order", new JSONArray().put("path_1")
                .put("path_2"));
        m = assertThrows(BundleException.class, () -> Bundles.parse(json)).getMessage();
        assertTrue(m, m.contains("manifest.policies.schedule.order is not a ladder (each level strictly cheaper, no "
                + "dominated path): " + problem));
        assertTrue(m, !m.contains("manifest.policies.battery.levels"));
    }

    @Test
    public void withoutLadderTestsThePlainLadderStands() throws Exception {
        List<String> plain = Arrays.asList("path_0", "path_1", "path_2");
        Manifest m = Bundles.parse(withTables(fourPaths(), plain));
        assertEquals(null, m.passedPairs());
        assertEquals(plain, Ladder.of(m));
        // A record that is not an object is refused (as Python's schema does); a record whose pairs
        // are not a list passes no test.
        for (Object notARecord : new Object[] {new JSONArray(), JSONObject.NULL, "none", 1, true}) {
            JSONObject json = withTables(fourPaths().put("ladder_tests", notARecord), plain);
            String message = assertThrows(BundleException.class, () -> Bundles.parse(json)).getMessage();
            assertTrue(message, message.contains("manifest.ladder_tests is a "));
            assertTrue(message, message.contains("; expected object"));
        }
        JSONObject noPairs = fourPaths().put("ladder_tests", new JSONObject().put("pairs", "none"));
        assertEquals(Arrays.asList("path_2"), Ladder.of(Bundles.parse(withTables(noPairs, Arrays.asList("path_2")))));
        assertThrows(BundleException.class, () -> Bundles.parse(withTables(noPairs, plain)));
    }

    @Test
    public void pythonStyleNumbers() {
        assertEquals("0.0251462", Ladder.g(0.025146213200000003));
        assertEquals("46.6", Ladder.g(46.6));
        assertEquals("1e-05", Ladder.g(1e-5));
        assertEquals("0", Ladder.g(0.0));
    }
}
