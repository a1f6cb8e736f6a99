package org.prpnas.bridge;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.util.List;
import org.json.JSONObject;
import org.junit.Test;

/** The paired tests read backwards, as the Python runtime reads them (prp.runtime.measured_costs). */
public class MeasuredCostsTest {
    @Test
    public void binomialTailIsTheExactMcNemarPValue() {
        assertEquals(1.0, MeasuredCosts.binomialTail(0, 10), 1e-15);
        assertEquals(Math.pow(2, -10), MeasuredCosts.binomialTail(10, 10), 1e-15);
        assertEquals(0.020694732666015625, MeasuredCosts.binomialTail(15, 20), 1e-12); // Python's exact value
        assertEquals(1.0, MeasuredCosts.binomialTail(0, 0), 0.0);
    }

    @Test
    public void aRecordedTestIsReadBackwardsFromItsCounts() throws Exception {
        JSONObject manifest = new JSONObject("{\"ladder_tests\": {\"alpha\": 0.05, \"pairs\": ["
                + "{\"path\": \"a\", \"cheaper\": \"b\", \"only_path_right\": 2, \"only_cheaper_right\": 20,"
                + " \"more_accurate\": false},"
                + "{\"path\": \"a\", \"cheaper\": \"c\", \"only_path_right\": 30, \"only_cheaper_right\": 3,"
                + " \"more_accurate\": true},"
                + "{\"path\": \"b\", \"cheaper\": \"c\", \"only_path_right\": 5, \"only_cheaper_right\": 6,"
                + " \"more_accurate\": false}, \"not a record\"]}}");
        List<JSONObject> reversed = MeasuredCosts.reversedTests(manifest);
        assertEquals(1, reversed.size());
        JSONObject r = reversed.get(0);
        assertEquals("b", r.getString("path"));
        assertEquals("a", r.getString("cheaper"));
        assertEquals(20, r.getInt("only_path_right"));
        assertTrue(r.getBoolean("more_accurate") && r.getBoolean("reversed"));
        assertTrue(MeasuredCosts.reversedTests(new JSONObject("{}")).isEmpty());
    }
}
