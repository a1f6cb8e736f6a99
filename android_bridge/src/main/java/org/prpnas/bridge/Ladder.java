package org.prpnas.bridge;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import org.json.JSONArray;
import org.json.JSONObject;

/**
 * The battery ladder (Python: {@code prp.runtime.policies.ladder}, {@code passed_pairs} and
 * {@code ladder_errors}): the paths no other path dominates on (accuracy, the objective's cost),
 * most accurate first, each strictly cheaper than the one above. The battery and schedule tables of
 * a manifest of schema {@value #SCHEMA_VERSION} or later must walk down it: {@link Manifest#parse}
 * refuses a table that holds a dominated path or a level that does not cost strictly less than the
 * one above. Dominated paths stay in the bundle (a fixed policy can still name them).
 *
 * <p>Where the manifest records paired tests on held-out images ({@code ladder_tests}, read by
 * {@link #passedPairs}), a path must also be measurably more accurate than every cheaper path on the
 * ladder: walking up from the cheapest non-dominated path, a path is kept only if its test against
 * every path kept so far passed ({@code more_accurate} true). An accuracy gap within the noise of
 * the images that measured it is no reason to pay more. The loader then also refuses a table that
 * lists a path above a cheaper listed path without such a test ("... is not measurably more
 * accurate than cheaper ... (manifest.ladder_tests)"). A malformed pair record counts as no passed
 * test; a {@code ladder_tests} that is not an object is refused by the schema check; a manifest
 * without {@code ladder_tests} (exported before the rule) keeps the plain ladder.
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
        return of(ids, accuracy, cost, null);
    }

    /**
     * The ladder's path ids under paired tests: of the plain ladder, walking up from the cheapest,
     * a path is kept only if {@code beats} holds {@link #pair pair(path, k)} for every path k kept
     * so far.
     *
     * @param ids path ids
     * @param accuracy each path's accuracy
     * @param cost each path's cost (lower is better)
     * @param beats the passed tests, as from {@link #passedPairs}; null for none recorded (the
     *     plain ladder)
     * @return the ladder, most accurate first
     */
    public static List<String> of(List<String> ids, double[] accuracy, double[] cost, Set<List<String>> beats) {
        List<Rung> rungs = new ArrayList<Rung>();
        for (int k = 0; k < ids.size(); k++) {
            rungs.add(new Rung(ids.get(k), accuracy[k], cost[k]));
        }
        return of(rungs, beats);
    }

    /**
     * The ladder of a manifest's paths on its objective's cost, under its recorded paired tests
     * ({@link Manifest#passedPairs}) where it has them.
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
        return of(rungs, manifest.passedPairs());
    }

    /**
     * The key of one passed test in a set of {@link #passedPairs}.
     *
     * @param path the costlier path
     * @param cheaper the cheaper path it was tested against
     * @return the pair (path, cheaper)
     */
    public static List<String> pair(String path, String cheaper) {
        return Collections.unmodifiableList(Arrays.asList(path, cheaper));
    }

    /**
     * The (path, cheaper) pairs of a manifest's {@code ladder_tests.pairs} whose test passed
     * (Python: {@code passed_pairs}). A record counts only if it is an object whose
     * {@code more_accurate} is JSON {@code true} and whose {@code path} and {@code cheaper} are
     * strings; anything else in the list is no passed test for that pair.
     *
     * @param m the manifest JSON
     * @return the passed pairs ({@link #pair}), unmodifiable; empty where {@code pairs} is not a
     *     list; null where {@code ladder_tests} is missing (no tests recorded) or not an object
     *     (which {@link ManifestSchema#validate} refuses)
     */
    public static Set<List<String>> passedPairs(JSONObject m) {
        JSONObject tests = m.optJSONObject("ladder_tests");
        if (tests == null) {
            return null;
        }
        Set<List<String>> passed = new HashSet<List<String>>();
        JSONArray pairs = tests.optJSONArray("pairs");
        for (int i = 0; pairs != null && i < pairs.length(); i++) {
            JSONObject record = pairs.optJSONObject(i);
            // Python's `is True`: JSON true only, not 1 or "true".
            if (record != null && Boolean.TRUE.equals(record.opt("more_accurate"))) {
                Object upper = record.opt("path");
                Object lower = record.opt("cheaper");
                if (upper instanceof String && lower instanceof String) {
                    passed.add(pair((String) upper, (String) lower));
                }
            }
        }
        return Collections.unmodifiableSet(passed);
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

    private static List<String> of(List<Rung> rungs, Set<List<String>> beats) {
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
        if (beats == null) {
            return out;
        }
        List<String> kept = new ArrayList<String>();
        for (int k = out.size() - 1; k >= 0; k--) { // cheapest first
            String id = out.get(k);
            if (untested(id, kept, beats).isEmpty()) {
                kept.add(id);
            }
        }
        Collections.reverse(kept);
        return kept;
    }

    /** The paths of {@code cheaper} that {@code id} has no passed test against (none when beats is null). */
    private static List<String> untested(String id, List<String> cheaper, Set<List<String>> beats) {
        List<String> out = new ArrayList<String>();
        for (String c : cheaper) {
            if (beats != null && !beats.contains(pair(id, c))) {
                out.add(c);
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
     * as Python's {@code ladder_errors}): a dominated path, a level that does not cost strictly less
     * than the one above, or, where the manifest records {@code ladder_tests}, a path listed above a
     * cheaper listed path without a passed test against it. Empty before schema
     * {@value #SCHEMA_VERSION}. A malformed
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
        Set<List<String>> beats = passedPairs(m);
        String fix = "the ladder by " + field + " is " + Manifest.join(of(rungs, beats), ", ");
        String[][] tableNames = {{"battery", "battery.levels"}, {"schedule", "schedule.order"}};
        for (String[] t : tableNames) {
            List<Object> ids = tableIds(tables, t[0]);
            List<String> problems = new ArrayList<String>();
            List<String> listed = new ArrayList<String>();
            for (Object id : ids == null ? new ArrayList<Object>() : ids) {
                if (id instanceof String && byId.containsKey(id)) {
                    listed.add((String) id);
                }
            }
            for (int k = 0; k < listed.size(); k++) {
                List<String> untested = untested(listed.get(k), listed.subList(k + 1, listed.size()), beats);
                if (!untested.isEmpty()) {
                    problems.add(listed.get(k) + " is not measurably more accurate than cheaper "
                            + Manifest.join(untested, ", ") + " (manifest.ladder_tests)");
                }
            }
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
