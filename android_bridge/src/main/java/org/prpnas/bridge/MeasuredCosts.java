package org.prpnas.bridge;

import java.math.BigDecimal;
import java.math.RoundingMode;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.json.JSONArray;
import org.json.JSONException;
import org.json.JSONObject;

/**
 * The policies on a {@link Calibration}'s measured costs (Python: {@code prp.runtime.measured_costs},
 * the same paths chosen): a manifest whose paths carry the measured {@code latency_ms} and
 * {@code energy_mj}, whose battery and schedule ladders are derived again on the measured cost of
 * the objective (a path measured costlier than a cheaper one that is not less accurate leaves; the
 * bundle's paired tests keep their rule, read both ways where measuring reorders a pair), and a
 * policy whose reason says when the manifest's ladder would have run a path that left.
 */
public final class MeasuredCosts {
    private MeasuredCosts() {}

    /** A manifest on measured costs, and what that changed. */
    public static final class Result {
        /** The manifest with measured costs and, where the ladder changed, its tables. */
        public final Manifest manifest;
        /** The ladder on measured cost, and the tables' ladder before. */
        public final List<String> ladder, manifestLadder;
        /** Path -> why it is off the measured ladder. */
        public final Map<String, String> left;

        Result(Manifest manifest, List<String> ladder, List<String> manifestLadder, Map<String, String> left) {
            this.manifest = manifest;
            this.ladder = Collections.unmodifiableList(ladder);
            this.manifestLadder = Collections.unmodifiableList(manifestLadder);
            this.left = Collections.unmodifiableMap(left);
        }
    }

    /** P(X >= k) for X ~ Binomial(n, 1/2): the exact one-sided McNemar p-value. */
    static double binomialTail(int k, int n) {
        if (n == 0) {
            return 1.0;
        }
        double logHalfN = n * Math.log(0.5);
        double logC = 0.0; // log C(n, 0)
        double tail = 0.0;
        for (int i = 0; i <= n; i++) {
            if (i > 0) {
                logC += Math.log(n - i + 1) - Math.log(i);
            }
            if (i >= k) {
                tail += Math.exp(logC + logHalfN);
            }
        }
        return tail;
    }

    /** The recorded paired tests read the other way round that pass, as manifest pair records. */
    static List<JSONObject> reversedTests(JSONObject manifest) {
        List<JSONObject> out = new ArrayList<JSONObject>();
        JSONObject tests = manifest.optJSONObject("ladder_tests");
        JSONArray pairs = tests == null ? null : tests.optJSONArray("pairs");
        if (pairs == null) {
            return out;
        }
        double alpha = tests.optDouble("alpha", 0.05);
        for (int i = 0; i < pairs.length(); i++) {
            JSONObject pair = pairs.optJSONObject(i);
            if (pair == null || !(pair.opt("path") instanceof String) || !(pair.opt("cheaper") instanceof String)) {
                continue;
            }
            Object upperRight = pair.opt("only_path_right");
            Object lowerRight = pair.opt("only_cheaper_right");
            if (!(upperRight instanceof Integer) || !(lowerRight instanceof Integer)
                    || (Integer) upperRight < 0 || (Integer) lowerRight < 0) {
                continue;
            }
            int onlyUpper = (Integer) upperRight;
            int onlyLower = (Integer) lowerRight;
            double p = binomialTail(onlyLower, onlyUpper + onlyLower);
            if (p < alpha) {
                try {
                    out.add(new JSONObject().put("path", pair.getString("cheaper")).put("cheaper", pair.getString("path"))
                            .put("only_path_right", onlyLower).put("only_cheaper_right", onlyUpper)
                            .put("p_value", p).put("more_accurate", true).put("reversed", true));
                } catch (JSONException e) {
                    throw new IllegalStateException(e);
                }
            }
        }
        return out;
    }

    /**
     * @throws BundleException if the measured manifest does not validate (it should whenever the
     *     bundle does)
     * @throws PolicyException if the objective is unknown
     */
    public static Result apply(Manifest manifest, Calibration calibration) throws BundleException {
        JSONObject json = manifest.toJson();
        try {
            String objective = json.optString("objective");
            String field = objective.equals("energy") ? "energy_mj" : objective.equals("latency") ? "latency_ms" : null;
            if (field == null) {
                throw new PolicyException("unknown objective '" + objective + "'; expected energy or latency");
            }
            JSONArray paths = json.getJSONArray("paths");
            List<String> ids = new ArrayList<String>();
            double[] accuracy = new double[paths.length()];
            double[] cost = new double[paths.length()];
            for (int i = 0; i < paths.length(); i++) {
                JSONObject p = paths.getJSONObject(i);
                String id = p.getString("id");
                p.put("latency_ms", calibration.latencyMs().get(id));
                p.put("energy_mj", calibration.energyMj().get(id));
                ids.add(id);
                accuracy[i] = p.getDouble("accuracy");
                cost[i] = p.getDouble(field);
            }
            Set<List<String>> beats = manifest.passedPairs();
            List<JSONObject> reversed = reversedTests(json);
            if (beats != null) {
                beats = new HashSet<List<String>>(beats);
                JSONArray recorded = json.getJSONObject("ladder_tests").optJSONArray("pairs");
                for (JSONObject r : reversed) {
                    beats.add(Ladder.pair(r.getString("path"), r.getString("cheaper")));
                    if (recorded != null) {
                        recorded.put(r);
                    }
                }
            }
            List<String> ladder = Ladder.of(ids, accuracy, cost, beats);
            JSONObject tables = json.getJSONObject("policies");
            List<String> old = tableLadder(tables, ids);
            Map<String, String> left = new LinkedHashMap<String, String>();
            for (String id : old) {
                if (!ladder.contains(id)) {
                    left.put(id, whyLeft(id, ids, accuracy, cost, ladder, field));
                }
            }
            if (!ladder.equals(old)) {
                JSONObject battery = tables.optJSONObject("battery");
                if (battery != null) {
                    JSONArray levels = new JSONArray();
                    int s = ladder.size();
                    for (int i = 0; i < s; i++) {
                        double pct = new BigDecimal(100.0 * (s - 1 - i) / s).setScale(2, RoundingMode.HALF_EVEN)
                                .doubleValue();
                        levels.put(new JSONObject().put("min_battery_pct", pct).put("path", ladder.get(i)));
                    }
                    battery.put("levels", levels);
                }
                JSONObject schedule = tables.optJSONObject("schedule");
                if (schedule != null) {
                    schedule.put("order", new JSONArray(ladder));
                }
            }
            String where = new java.io.File(manifest.directory(), Manifest.FILE_NAME) + " on measured costs";
            return new Result(Manifest.parse(json.toString(), manifest.directory(), where), ladder, old, left);
        } catch (JSONException e) {
            throw new BundleException("cannot apply the calibration to " + manifest.directory() + ": " + e.getMessage(),
                    e);
        }
    }

    private static List<String> tableLadder(JSONObject tables, List<String> ids) throws JSONException {
        List<String> out = new ArrayList<String>();
        JSONObject schedule = tables.optJSONObject("schedule");
        JSONObject battery = tables.optJSONObject("battery");
        if (schedule != null) {
            JSONArray order = schedule.getJSONArray("order");
            for (int i = 0; i < order.length(); i++) {
                out.add(order.getString(i));
            }
        } else if (battery != null) {
            JSONArray levels = battery.getJSONArray("levels");
            for (int i = 0; i < levels.length(); i++) {
                out.add(levels.getJSONObject(i).getString("path"));
            }
        } else {
            out.addAll(ids);
        }
        return out;
    }

    private static String whyLeft(String id, List<String> ids, double[] accuracy, double[] cost, List<String> ladder,
            String field) {
        int k = ids.indexOf(id);
        String unit = field.equals("energy_mj") ? "mJ" : "ms";
        int nearest = -1;
        for (int j = 0; j < ids.size(); j++) {
            boolean dominates = accuracy[j] >= accuracy[k] && cost[j] <= cost[k]
                    && (accuracy[j] > accuracy[k] || cost[j] < cost[k]);
            if (dominates && (nearest < 0 || accuracy[j] < accuracy[nearest]
                    || (accuracy[j] == accuracy[nearest] && cost[j] < cost[nearest]))) {
                nearest = j;
            }
        }
        if (nearest >= 0) {
            return id + " left the ladder: measured " + Fmt.g(cost[k]) + " " + unit + ", costlier than "
                    + ids.get(nearest) + " (" + Fmt.g(cost[nearest]) + " " + unit + "), which is not less accurate";
        }
        return id + " left the ladder: measured " + Fmt.g(cost[k]) + " " + unit
                + ", not measurably more accurate than a path that measured cheaper (manifest.ladder_tests)";
    }

    /**
     * {@link Policies#fromManifest(Manifest, String)} on the calibration's costs.
     *
     * @param name a policy name, or {@code null} for the manifest's default
     */
    public static Policy policy(Manifest manifest, Calibration calibration, String name) throws BundleException {
        final Result measured = apply(manifest, calibration);
        final Policy inner = Policies.fromManifest(measured.manifest, name);
        if (measured.left.isEmpty() || !(inner.name().equals("battery") || inner.name().equals("schedule"))) {
            return inner;
        }
        final Policy before = Policies.fromManifest(manifest, name);
        return new Policy() {
            @Override
            public String name() {
                return inner.name();
            }

            @Override
            public Decision decide(PolicyContext ctx) {
                Decision d = inner.decide(ctx);
                String would = before.decide(ctx).path();
                if (!would.equals(d.path()) && measured.left.containsKey(would)) {
                    return new Decision(d.path(), d.reason() + "; " + measured.left.get(would));
                }
                return d;
            }
        };
    }
}
