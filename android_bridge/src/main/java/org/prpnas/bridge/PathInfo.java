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
    private final String precision;
    private final Double fp32TestAccuracy;

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
        // A path without the field (every bundle before int8 export, every fp32 export) is float32,
        // as prp.runtime.bundle.path_precision reads it; ManifestSchema checks the value.
        this.precision = p.optString("precision", ManifestSchema.FLOAT32);
        this.fp32TestAccuracy = optNumber(p, "fp32_test_accuracy");
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

    /**
     * The path's arithmetic: {@code "float32"} or {@code "int8"} ({@code prp-export --quantize int8}).
     * Input and output are float32 either way, so {@link InferenceEngine#run} is called alike.
     */
    public String precision() {
        return precision;
    }

    /**
     * For an int8 path, the test accuracy in percent of the same path in float32 before
     * quantization (its int8 figure is the manifest's {@code test_accuracy}); {@code null} for a
     * float32 path.
     */
    public Double fp32TestAccuracy() {
        return fp32TestAccuracy;
    }

    @Override
    public String toString() {
        return id + " (" + method + ", " + accuracy + " %, " + energyMj + " mJ)";
    }
}
