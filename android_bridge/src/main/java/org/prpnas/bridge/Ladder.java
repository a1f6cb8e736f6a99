package org.prpnas.bridge;

import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.json.JSONArray;
import org.json.JSONObject;

/**
 * The battery ladder (Python: {@code prp.runtime.policies.ladder} and {@code ladder_errors}): the
 * paths no other path dominates on (accuracy, the objective's cost), most accurate first, each
 * strictly cheaper than the one above. The battery and schedule tables of a manifest of schema
 * {@value #SCHEMA_VERSION} or later must walk down it: {@link Manifest#parse} refuses a table that
 * holds a dominated path or a level that does not cost strictly less than the one above. Dominated
 * paths stay in the bundle (a fixed policy can still name them).
 */
public final class Ladder {
    /** The first manifest {@code schema_version} whose tables must be ladders. */
    public static final int SCHEMA_VERSION = 2;

    private static final String[][] COSTS = {{"energy", "energy_mj", "mJ"}, {"latency", "latency_ms", "ms"}};

    private Ladder() {}

    /** One path as the ladder sees it. */
    private static final class Rung {
        final String id;
        final double accuracy;
        final double cost;

        Rung(String id, double accuracy, double cost) {
            this.id = id;
            this.accuracy = accuracy;
            this.cost = cost;
        }

        boolean dominates(Rung b) {
            return accuracy >= b.accuracy && cost <= b.cost && (accuracy > b.accuracy || cost < b.cost);
        }

        String show(String unit) {
            return g(accuracy) + " %, " + g(cost) + " " + unit;
        }
    }

    /**
     * The ladder's path ids: of equal accuracies only the cheapest can be on it, of exact
     * duplicates only the first given.
     *
     * @param ids path ids
     * @param accuracy each path's accuracy
     * @param cost each path's cost (lower is better)
     * @return the ladder, most accurate first
     */
    public static List<String> of(List<String> ids, double[] accuracy, double[] cost) {
        List<Rung> rungs = new ArrayList<Rung>();
        for (int k = 0; k < ids.size(); k++) {
            rungs.add(new Rung(ids.get(k), accuracy[k], cost[k]));
        }
        return of(rungs);
    }

    /**
     * The ladder of a manifest's paths on its objective's cost.
     *
     * @param manifest a loaded manifest
     * @return the ladder's path ids, most accurate first
     * @throws PolicyException if the objective is unknown or a path lacks its cost
     */
    public static List<String> of(Manifest manifest) {
        String objective = manifest.toJson().optString("objective");
        String[] cost = costOf(objective);
        if (cost == null) {
            throw new PolicyException("unknown objective '" + objective + "'; the policy tables are ordered by the "
                    + "cost of one of: energy, latency");
        }
        List<Rung> rungs = new ArrayList<Rung>();
        for (PathInfo p : manifest.paths()) {
            Double c = cost[0].equals("energy") ? p.energyMj() : p.latencyMs();
            if (c == null) {
                throw new PolicyException("path " + p.id() + " has no " + cost[1] + "; the ladder is ordered by it");
            }
            rungs.add(new Rung(p.id(), p.accuracy(), c));
        }
        return of(rungs);
    }

    private static List<Rung> bestFirst(final List<Rung> rungs) {
        List<Integer> order = new ArrayList<Integer>();
        for (int k = 0; k < rungs.size(); k++) {
            order.add(k);
        }
        Collections.sort(order, new Comparator<Integer>() {
            @Override
            public int compare(Integer a, Integer b) {
                Rung x = rungs.get(a);
                Rung y = rungs.get(b);
                int c = Double.compare(y.accuracy, x.accuracy);
                if (c == 0) {
                    c = Double.compare(x.cost, y.cost);
                }
                return c != 0 ? c : a.compareTo(b);
            }
        });
        List<Rung> out = new ArrayList<Rung>();
        for (int k : order) {
            out.add(rungs.get(k));
        }
        return out;
    }

    private static List<String> of(List<Rung> rungs) {
        List<String> out = new ArrayList<String>();
        double cheapest = Double.POSITIVE_INFINITY;
        for (Rung r : bestFirst(rungs)) {
            // Everything before r is at least as accurate: r is on the ladder only if it is cheaper
            // than all of them (otherwise one of them dominates or duplicates it).
            if (r.cost < cheapest) {
                out.add(r.id);
                cheapest = r.cost;
            }
        }
        return out;
    }

    private static String[] costOf(String objective) {
        for (String[] c : COSTS) {
            if (c[0].equals(objective)) {
                return c;
            }
        }
        return null;
    }

    private static boolean finite(Object v) {
        return v instanceof Number && !Double.isNaN(((Number) v).doubleValue())
                && !Double.isInfinite(((Number) v).doubleValue());
    }

    /** The ids a battery ({@code levels[].path}) or schedule ({@code order}) table lists, or null. */
    private static List<Object> tableIds(JSONObject tables, String name) {
        JSONObject table = tables.optJSONObject(name);
        if (table == null) {
            return null;
        }
        List<Object> ids = new ArrayList<Object>();
        if (name.equals("battery")) {
            JSONArray levels = table.optJSONArray("levels");
            if (levels == null) {
                return null;
            }
            for (int i = 0; i < levels.length(); i++) {
                JSONObject lv = levels.optJSONObject(i);
                if (lv == null) {
                    return null;
                }
                ids.add(lv.opt("path"));
            }
            return ids;
        }
        JSONArray order = table.optJSONArray("order");
        if (order == null) {
            return null;
        }
        for (int i = 0; i < order.length(); i++) {
            ids.add(order.opt(i));
        }
        return ids;
    }

    /**
     * Every way a manifest's battery and schedule tables break the ladder rule (the same sentences
     * as Python's {@code ladder_errors}); empty before schema {@value #SCHEMA_VERSION}. A malformed
     * table, an unknown path id or a non-numeric accuracy is left to the rest of the schema check.
     *
     * @param m the parsed manifest
     * @return one sentence per table that is not a ladder
     */
    static List<String> errors(JSONObject m) {
        List<String> errors = new ArrayList<String>();
        Object version = m.opt("schema_version");
        JSONArray paths = m.optJSONArray("paths");
        JSONObject tables = m.optJSONObject("policies");
        if (!JsonKind.isWhole(version) || ((Number) version).longValue() < SCHEMA_VERSION || paths == null
                || tables == null) {
            return errors;
        }
        for (int k = 0; k < paths.length(); k++) {
            JSONObject p = paths.optJSONObject(k);
            if (p == null || !finite(p.opt("accuracy"))) {
                return errors;
            }
        }
        Object objective = m.opt("objective");
        String[] cost = costOf(String.valueOf(objective));
        if (!(objective instanceof String) || cost == null) {
            errors.add("manifest.objective must be one of ['energy', 'latency'] (its cost orders the policy tables), "
                    + "got '" + objective + "'");
            return errors;
        }
        String field = cost[1];
        String unit = cost[2];
        List<Rung> rungs = new ArrayList<Rung>();
        for (int k = 0; k < paths.length(); k++) {
            JSONObject p = paths.optJSONObject(k);
            Object c = p.opt(field);
            if (!finite(c)) {
                String shown = c == null || c == JSONObject.NULL ? "None" : String.valueOf(c);
                errors.add("manifest.paths[" + k + "]." + field + " is " + shown + ", but the objective is "
                        + objective + ": every path needs its " + field
                        + " to order the policy tables; export the bundle again");
                continue;
            }
            rungs.add(new Rung(p.optString("id"), ((Number) p.opt("accuracy")).doubleValue(),
                    ((Number) c).doubleValue()));
        }
        if (!errors.isEmpty()) {
            return errors;
        }
        Map<String, Rung> byId = new LinkedHashMap<String, Rung>();
        for (Rung r : rungs) {
            if (!byId.containsKey(r.id)) {
                byId.put(r.id, r);
            }
        }
        List<Rung> best = bestFirst(rungs);
        String fix = "the ladder by " + field + " is " + Manifest.join(of(rungs), ", ");
        String[][] tableNames = {{"battery", "battery.levels"}, {"schedule", "schedule.order"}};
        for (String[] t : tableNames) {
            List<Object> ids = tableIds(tables, t[0]);
            List<String> problems = new ArrayList<String>();
            Rung above = null;
            for (Object id : ids == null ? new ArrayList<Object>() : ids) {
                Rung rung = id instanceof String ? byId.get(id) : null;
                if (rung == null) {
                    continue;
                }
                Rung dom = null;
                for (Rung r : best) {
                    if (r.dominates(rung)) {
                        dom = r;
                        break;
                    }
                }
                if (dom != null) {
                    problems.add(rung.id + " (" + rung.show(unit) + ") is dominated by " + dom.id + " ("
                            + dom.show(unit) + ")");
                } else if (above != null && !(rung.cost < above.cost)) {
                    problems.add(rung.id + " (" + g(rung.cost) + " " + unit + ") does not cost less than " + above.id
                            + " above it (" + g(above.cost) + " " + unit + ")");
                }
                above = rung;
            }
            if (!problems.isEmpty()) {
                errors.add("manifest.policies." + t[1] + " is not a ladder (each level strictly cheaper, no dominated "
                        + "path): " + Manifest.join(problems, ", ") + "; " + fix
                        + ": export the bundle again or list only those paths");
            }
        }
        return errors;
    }

    /** Six significant digits without trailing zeros, like Python's {@code f"{value:g}"}. */
    static String g(double value) {
        if (Double.isNaN(value) || Double.isInfinite(value)) {
            return Double.toString(value);
        }
        String s = String.format(Locale.ROOT, "%.6g", value);
        String exp = "";
        int e = s.indexOf('e');
        if (e >= 0) {
            exp = s.substring(e);
            s = s.substring(0, e);
            // Python writes e-05 / e+06: at least two exponent digits, as Java does.
        }
        if (s.indexOf('.') >= 0) {
            s = s.replaceAll("0+$", "").replaceAll("\\.$", "");
        }
        return s + exp;
    }
}
