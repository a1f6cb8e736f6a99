package org.prpnas.bridge;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.json.JSONArray;
import org.json.JSONObject;

/** Policies from a manifest's {@code policies} tables (Python: {@code policy_from_manifest}). */
public final class Policies {
    /** The policy names {@link #fromManifest} knows. */
    public static final List<String> NAMES = java.util.Collections.unmodifiableList(
            java.util.Arrays.asList("battery", "schedule", "energy-budget", "fixed"));

    private Policies() {}

    /** The manifest's default policy ({@code policies.default}, else battery). */
    public static Policy fromManifest(Manifest manifest) {
        return fromManifest(manifest, null, null, 24.0, null);
    }

    /** The named policy with the defaults of the Python runtime. */
    public static Policy fromManifest(Manifest manifest, String name) {
        return fromManifest(manifest, name, null, 24.0, null);
    }

    /**
     * A policy from the manifest's tables.
     *
     * @param manifest the bundle's manifest
     * @param name {@code battery}, {@code schedule}, {@code energy-budget} or {@code fixed}; {@code null}
     *     for the manifest's default
     * @param power the energy budget's power model; {@code null} for {@link PowerModel#PIXEL3_LIKE}
     * @param targetH the energy budget's target battery life in hours
     * @param fixed the fixed policy's path; {@code null} for the most accurate
     * @throws PolicyException for an unknown name, a missing table, or a table naming a path the
     *     bundle lacks
     */
    public static Policy fromManifest(Manifest manifest, String name, PowerModel power, double targetH, String fixed) {
        List<String> ids = manifest.ids();
        JSONObject tables = manifest.policyTables();
        String chosen = name != null ? name : tables.optString("default", "battery");
        if (chosen.equals("battery")) {
            JSONObject t = table(tables, "battery");
            JSONArray levels = array(t, "levels", "battery");
            double[] thresholds = new double[levels.length()];
            List<String> paths = new ArrayList<String>();
            for (int i = 0; i < levels.length(); i++) {
                JSONObject lv = levels.optJSONObject(i);
                if (lv == null) {
                    throw new PolicyException("policies.battery.levels[" + i + "] must be an object");
                }
                thresholds[i] = number(lv, "min_battery_pct", "battery.levels[" + i + "]");
                paths.add(known(string(lv, "path", "battery.levels[" + i + "]"), ids));
            }
            double h = t.has("hysteresis_pct") ? number(t, "hysteresis_pct", "battery") : 3.0;
            return new BatteryPolicy(thresholds, paths, h);
        }
        if (chosen.equals("schedule")) {
            JSONObject t = table(tables, "schedule");
            JSONArray order = array(t, "order", "schedule");
            List<String> paths = new ArrayList<String>();
            for (int i = 0; i < order.length(); i++) {
                Object p = order.opt(i);
                if (!(p instanceof String)) {
                    throw new PolicyException("policies.schedule.order[" + i + "] must be a path id, got " + p);
                }
                paths.add(known((String) p, ids));
            }
            return new SchedulePolicy(paths, number(t, "switch_every_h", "schedule"));
        }
        if (chosen.equals("energy-budget")) {
            Map<String, Double> energies = new LinkedHashMap<String, Double>();
            for (PathInfo p : manifest.paths()) {
                if (p.energyMj() == null) {
                    throw new PolicyException("the bundle has no energy per path (" + p.id()
                            + ".energy_mj is null); the energy-budget policy needs it");
                }
                energies.put(p.id(), p.energyMj());
            }
            return new EnergyBudgetPolicy(energies, power != null ? power : PowerModel.PIXEL3_LIKE, targetH);
        }
        if (chosen.equals("fixed")) {
            return new FixedPolicy(known(fixed != null ? fixed : ids.get(0), ids));
        }
        throw new PolicyException("unknown policy '" + chosen
                + "'; policies are: battery, schedule, energy-budget, fixed");
    }

    private static String known(String id, List<String> ids) {
        if (!ids.contains(id)) {
            throw new PolicyException("policy names path '" + id + "', which the bundle lacks (" + ids + ")");
        }
        return id;
    }

    private static JSONObject table(JSONObject tables, String name) {
        JSONObject t = tables.optJSONObject(name);
        if (t == null) {
            throw new PolicyException("the manifest has no policies." + name + " table; export the bundle again or "
                    + "choose another policy (" + NAMES + ")");
        }
        return t;
    }

    private static JSONArray array(JSONObject t, String key, String where) {
        JSONArray a = t.optJSONArray(key);
        if (a == null) {
            throw new PolicyException("policies." + where + "." + key + " must be a list");
        }
        return a;
    }

    private static double number(JSONObject t, String key, String where) {
        Object v = t.opt(key);
        if (!(v instanceof Number)) {
            throw new PolicyException("policies." + where + "." + key + " must be a number, got "
                    + (v == null ? "nothing" : JsonKind.nameOf(v)));
        }
        return ((Number) v).doubleValue();
    }

    private static String string(JSONObject t, String key, String where) {
        Object v = t.opt(key);
        if (!(v instanceof String)) {
            throw new PolicyException("policies." + where + "." + key + " must be a path id, got " + v);
        }
        return (String) v;
    }
}
