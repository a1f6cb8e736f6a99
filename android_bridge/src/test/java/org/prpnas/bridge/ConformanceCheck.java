package org.prpnas.bridge;

import java.io.File;
import java.nio.charset.Charset;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.List;
import org.json.JSONArray;
import org.json.JSONException;
import org.json.JSONObject;

/**
 * Command line: checks the Java policies and runtime against a table the Python runtime wrote
 * ({@code android_bridge/conformance/make_table.py}).
 *
 * <pre>
 * java -cp ... org.prpnas.bridge.ConformanceCheck BUNDLE_DIR TABLE.json
 * </pre>
 *
 * <p>For every case, builds the policy with {@link Policies#fromManifest} from the bundle's manifest
 * (with the case's tables or energies swapped in) and compares its choice with Python's on every
 * (battery, clock, previous path) row. For every trace, drives a {@link SupernetRuntime} (with a
 * recording engine) through the same clock, battery and manual switches as Python's
 * {@code AdaptiveModel} and compares the path of every call and the switch log. For every random
 * front under {@code ladders} (some with recorded paired tests, {@code ladder_tests}), parses the
 * manifest with that front: where Python's loader refused it, {@link Manifest#parse} must refuse it
 * for the same tables, and {@link ManifestSchema#validate} must say Python's sentences word for
 * word; where Python accepted it, {@link Ladder#of(Manifest)} must give Python's ladder (under the
 * passed tests) and the battery and schedule policies Python's choices. Prints a summary and up
 * to 20 disagreements; exit status 0 only when everything agrees.
 */
public final class ConformanceCheck {
    private static final int SHOW = 20;

    private final List<String> mismatches = new ArrayList<String>();
    private int compared;

    private ConformanceCheck() {}

    /** @param args the bundle folder and the table */
    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: ConformanceCheck BUNDLE_DIR TABLE.json");
            System.exit(64);
        }
        Manifest manifest = Manifest.load(new File(args[0]));
        JSONObject table = new JSONObject(new String(Files.readAllBytes(new File(args[1]).toPath()),
                Charset.forName("UTF-8")));
        ConformanceCheck check = new ConformanceCheck();
        JSONArray cases = table.getJSONArray("cases");
        int rows = 0;
        for (int i = 0; i < cases.length(); i++) {
            rows += check.checkCase(manifest, cases.getJSONObject(i));
        }
        int policyMismatches = check.mismatches.size();
        JSONArray traces = table.getJSONArray("traces");
        int steps = 0;
        for (int i = 0; i < traces.length(); i++) {
            steps += check.checkTrace(manifest, traces.getJSONObject(i));
        }
        int traceMismatches = check.mismatches.size() - policyMismatches;
        JSONArray ladders = table.optJSONArray("ladders");
        int ladderRows = 0;
        int refused = 0;
        for (int i = 0; ladders != null && i < ladders.length(); i++) {
            JSONObject spec = ladders.getJSONObject(i);
            ladderRows += check.checkLadder(manifest, spec);
            refused += spec.getJSONArray("refused").length() > 0 ? 1 : 0;
        }
        int ladderMismatches = check.mismatches.size() - policyMismatches - traceMismatches;
        System.out.println("conformance: " + cases.length() + " policies, " + rows + " rows, " + policyMismatches
                + " mismatches; " + traces.length() + " traces, " + steps + " steps, " + traceMismatches
                + " mismatches; " + (ladders == null ? 0 : ladders.length()) + " ladders (" + refused + " refused), "
                + ladderRows + " rows, " + ladderMismatches + " mismatches");
        for (int i = 0; i < Math.min(SHOW, check.mismatches.size()); i++) {
            System.out.println("  " + check.mismatches.get(i));
        }
        System.exit(check.mismatches.isEmpty() && rows > 0 && steps > 0 ? 0 : 1);
    }

    /**
     * The shipped manifest's JSON without its paired tests (they are about its own paths; a case carries
     * its own or none), with the case's top-level fields ({@code manifest}) swapped in.
     */
    private static JSONObject withFields(Manifest shipped, JSONObject spec) throws JSONException {
        JSONObject json = shipped.toJson();
        json.remove("ladder_tests");
        JSONObject fields = spec.optJSONObject("manifest");
        if (fields != null) {
            java.util.Iterator<String> keys = fields.keys();
            while (keys.hasNext()) {
                String key = keys.next();
                json.put(key, fields.get(key));
            }
        }
        return json;
    }

    private int checkRows(String name, Policy policy, JSONArray rows) throws JSONException {
        for (int i = 0; i < rows.length(); i++) {
            JSONArray row = rows.getJSONArray(i);
            Double battery = optDouble(row, 0);
            double hours = row.getDouble(1);
            String current = optString(row, 2);
            String chosen = policy.decide(new PolicyContext(battery, hours, current)).path();
            expect(name + " battery=" + battery + " hours=" + hours + " current=" + current, row.getString(3), chosen);
        }
        return rows.length();
    }

    private int checkLadder(Manifest shipped, JSONObject spec) throws JSONException {
        String name = spec.getString("name");
        JSONArray refused = spec.getJSONArray("refused");
        String text = withFields(shipped, spec).toString();
        Manifest manifest;
        try {
            manifest = Manifest.parse(text, shipped.directory(), "case " + name);
        } catch (BundleException e) {
            List<String> tables = new ArrayList<String>();
            for (String t : new String[] {"manifest.policies.battery.levels", "manifest.policies.schedule.order"}) {
                if (e.getMessage().contains(t + " is not a ladder")) {
                    tables.add(t);
                }
            }
            List<String> python = new ArrayList<String>();
            for (int i = 0; i < refused.length(); i++) {
                python.add(refused.getString(i));
            }
            expect(name + " refused tables (" + e.getMessage() + ")", python, tables);
            JSONArray sentences = spec.optJSONArray("errors");
            if (sentences != null) {
                List<String> said = new ArrayList<String>();
                for (int i = 0; i < sentences.length(); i++) {
                    said.add(sentences.getString(i));
                }
                expect(name + " errors", said, ManifestSchema.validate(new JSONObject(text)));
            }
            return 0;
        }
        expect(name + " refused tables", refused.length() > 0 ? refused.toString() : "[]", "[]");
        List<String> ladder = new ArrayList<String>();
        JSONArray expected = spec.getJSONArray("ladder");
        for (int i = 0; i < expected.length(); i++) {
            ladder.add(expected.getString(i));
        }
        expect(name + " ladder", ladder, Ladder.of(manifest));
        JSONObject rows = spec.getJSONObject("rows");
        int n = 0;
        for (String policy : new String[] {"battery", "schedule"}) {
            if (rows.has(policy)) {
                n += checkRows(name + " " + policy, Policies.fromManifest(manifest, policy), rows.getJSONArray(policy));
            }
        }
        return n;
    }

    private void expect(String what, Object expected, Object actual) {
        compared++;
        if (expected == null ? actual != null : !expected.equals(actual)) {
            mismatches.add(what + ": Python " + expected + ", Java " + actual);
        }
    }

    private static Double optDouble(JSONArray row, int i) throws JSONException {
        return row.isNull(i) ? null : Double.valueOf(row.getDouble(i));
    }

    private static String optString(JSONArray row, int i) throws JSONException {
        return row.isNull(i) ? null : row.getString(i);
    }

    private int checkCase(Manifest shipped, JSONObject spec) throws BundleException, JSONException {
        JSONObject json = withFields(shipped, spec);
        if (spec.has("policies")) {
            json.put("policies", spec.getJSONObject("policies"));
        }
        JSONObject energy = spec.optJSONObject("energy_mj");
        if (energy != null) {
            JSONArray paths = json.getJSONArray("paths");
            for (int i = 0; i < paths.length(); i++) {
                JSONObject p = paths.getJSONObject(i);
                if (energy.has(p.getString("id"))) {
                    p.put("energy_mj", energy.getDouble(p.getString("id")));
                }
            }
        }
        String name = spec.getString("name");
        Manifest manifest = Manifest.parse(json.toString(), shipped.directory(), "case " + name);
        JSONObject power = spec.optJSONObject("power");
        PowerModel model = power == null ? null : new PowerModel(power.getDouble("capacity_mah"),
                power.getDouble("voltage_v"), power.getDouble("baseline_w"), power.getDouble("inferences_per_s"));
        String policyName = spec.isNull("policy") ? null : spec.getString("policy");
        String fixed = spec.has("fixed") && !spec.isNull("fixed") ? spec.getString("fixed") : null;
        Policy policy = Policies.fromManifest(manifest, policyName, model, spec.optDouble("target_h", 24.0), fixed);
        return checkRows(name, policy, spec.getJSONArray("rows"));
    }

    private int checkTrace(Manifest manifest, JSONObject trace) throws BundleException, JSONException {
        JSONArray steps = trace.getJSONArray("steps");
        JSONArray first = steps.getJSONArray(0);
        ManualClock clock = new ManualClock(first.getDouble(0));
        PushedBattery battery = new PushedBattery(optDouble(first, 1));
        String name = trace.getString("policy");
        SupernetRuntime rt = SupernetRuntime.builder(manifest, RecordingEngine.withPaths(manifest.paths().size()))
                .policy(name).battery(battery).clock(clock).decideEverySeconds(1.0).build();
        float[] image = new float[manifest.input().imageSize()];
        JSONArray paths = trace.getJSONArray("paths");
        for (int i = 0; i < steps.length(); i++) {
            JSONArray step = steps.getJSONArray(i);
            clock.set(step.getDouble(0));
            battery.push(optDouble(step, 1));
            String action = step.getString(2);
            if (action.startsWith("switch_to:")) {
                rt.switchTo(action.substring("switch_to:".length()));
            } else if (action.equals("follow")) {
                rt.followPolicy();
            }
            String path = rt.predict(image, manifest.input().batchShape(1)).path();
            expect("trace " + name + " step " + i + " (" + step + ")", paths.getString(i), path);
        }
        JSONArray expected = trace.getJSONArray("switches");
        List<PathSwitch> log = rt.switches();
        expect("trace " + name + " switch count", expected.length(), log.size());
        for (int i = 0; i < Math.min(expected.length(), log.size()); i++) {
            JSONArray s = expected.getJSONArray(i);
            PathSwitch actual = log.get(i);
            String java = actual.atH() + " " + actual.fromPath() + " -> " + actual.toPath();
            String python = s.getDouble(0) + " " + optString(s, 1) + " -> " + s.getString(2);
            expect("trace " + name + " switch " + i, python, java);
        }
        return steps.length();
    }
}
