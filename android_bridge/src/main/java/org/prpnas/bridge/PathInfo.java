package org.prpnas.bridge;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import org.json.JSONArray;
import org.json.JSONObject;

/** One exported path (sub-network) as the manifest describes it. Immutable. */
public final class PathInfo {
    private final String id;
    private final String method;
    private final List<String> ops;
    private final double accuracy;
    private final Double energyMj;
    private final Double latencyMs;
    private final long params;
    private final long macs;
    private final int paretoRank;

    PathInfo(JSONObject p) {
        this.id = p.optString("id");
        this.method = p.optString("method");
        List<String> names = new ArrayList<String>();
        JSONArray array = p.optJSONArray("ops");
        for (int i = 0; i < array.length(); i++) {
            names.add(String.valueOf(array.opt(i)));
        }
        this.ops = Collections.unmodifiableList(names);
        this.accuracy = p.optDouble("accuracy");
        this.energyMj = optNumber(p, "energy_mj");
        this.latencyMs = optNumber(p, "latency_ms");
        this.params = p.optLong("params");
        this.macs = p.optLong("macs");
        this.paretoRank = p.optInt("pareto_rank");
    }

    private static Double optNumber(JSONObject p, String key) {
        Object v = p.opt(key);
        return v instanceof Number ? Double.valueOf(((Number) v).doubleValue()) : null;
    }

    /** The path's id, {@code path_0} (most accurate) ... {@code path_{S-1}} (cheapest). */
    public String id() {
        return id;
    }

    /** The name of the program method that runs this path. */
    public String method() {
        return method;
    }

    /** The op chosen at every slot, by name. */
    public List<String> ops() {
        return ops;
    }

    /** Estimated accuracy in percent. */
    public double accuracy() {
        return accuracy;
    }

    /** Energy per inference in mJ on the manifest's cost device, or {@code null} if not priced. */
    public Double energyMj() {
        return energyMj;
    }

    /** Latency per inference in ms on the manifest's cost device, or {@code null} if not priced. */
    public Double latencyMs() {
        return latencyMs;
    }

    /** Number of weights. */
    public long params() {
        return params;
    }

    /** Multiply-accumulates per inference. */
    public long macs() {
        return macs;
    }

    /** Pareto rank among the searched paths (1 = on the front). */
    public int paretoRank() {
        return paretoRank;
    }

    @Override
    public String toString() {
        return id + " (" + method + ", " + accuracy + " %, " + energyMj + " mJ)";
    }
}
