package org.prpnas.bridge;

import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.json.JSONArray;
import org.json.JSONObject;

/**
 * The {@code manifest.json} schema, the same checks as {@code prp.runtime.bundle.validate_manifest}
 * (DESIGN.md, "Bundle format"): required keys and their kinds, the schema version, paths ordered
 * from most to least accurate with distinct methods, and a sha256 per listed file.
 */
public final class ManifestSchema {
    /**
     * The newest manifest {@code schema_version} this library reads (2: the policy tables must be
     * ladders, {@link Ladder}).
     */
    public static final int SCHEMA_VERSION = 2;

    private static final Map<String, JsonKind> TOP = spec(
            "schema_version", JsonKind.INT,
            "search_space", JsonKind.OBJECT,
            "input", JsonKind.OBJECT,
            "classes", JsonKind.ARRAY,
            "objective", JsonKind.STRING,
            "costs", JsonKind.OBJECT,
            "paths", JsonKind.ARRAY,
            "policies", JsonKind.OBJECT,
            "files", JsonKind.OBJECT,
            "provenance", JsonKind.OBJECT);
    private static final Map<String, JsonKind> INPUT = spec(
            "shape", JsonKind.ARRAY,
            "dtype", JsonKind.STRING,
            "layout", JsonKind.STRING,
            "mean", JsonKind.ARRAY,
            "std", JsonKind.ARRAY);
    private static final Map<String, JsonKind> PATH = spec(
            "id", JsonKind.STRING,
            "method", JsonKind.STRING,
            "onnx", JsonKind.STRING,
            "ops", JsonKind.ARRAY,
            "key", JsonKind.STRING,
            "accuracy", JsonKind.NUMBER,
            "test_accuracy", JsonKind.NUMBER,
            "energy_mj", JsonKind.NUMBER_OR_NULL,
            "latency_ms", JsonKind.NUMBER_OR_NULL,
            "params", JsonKind.INT,
            "macs", JsonKind.INT,
            "pareto_rank", JsonKind.INT,
            "max_abs_diff", JsonKind.OBJECT);

    private ManifestSchema() {}

    private static Map<String, JsonKind> spec(Object... pairs) {
        Map<String, JsonKind> m = new LinkedHashMap<String, JsonKind>();
        for (int i = 0; i < pairs.length; i += 2) {
            m.put((String) pairs[i], (JsonKind) pairs[i + 1]);
        }
        return Collections.unmodifiableMap(m);
    }

    private static void check(Object obj, Map<String, JsonKind> spec, String where, List<String> errors) {
        if (!(obj instanceof JSONObject)) {
            errors.add(where + " must be an object, got " + JsonKind.nameOf(obj));
            return;
        }
        JSONObject o = (JSONObject) obj;
        for (Map.Entry<String, JsonKind> e : spec.entrySet()) {
            if (!o.has(e.getKey())) { // true for a key whose value is JSON null, too
                errors.add(where + " lacks '" + e.getKey() + "'");
                continue;
            }
            Object value = o.opt(e.getKey());
            if (!e.getValue().accepts(value)) {
                errors.add(where + "." + e.getKey() + " is a " + JsonKind.nameOf(value) + "; expected "
                        + e.getValue().label());
            }
        }
    }

    /**
     * Every problem found in a parsed manifest; an empty list when it is valid.
     *
     * @param data the parsed {@code manifest.json} (any JSON value)
     * @return one readable sentence per problem, naming the field
     */
    public static List<String> validate(Object data) {
        List<String> errors = new ArrayList<String>();
        check(data, TOP, "manifest", errors);
        if (!errors.isEmpty()) {
            return errors;
        }
        JSONObject m = (JSONObject) data;
        long version = ((Number) m.opt("schema_version")).longValue();
        if (version > SCHEMA_VERSION) {
            errors.add("schema_version " + version + " is newer than this library reads (" + SCHEMA_VERSION
                    + "); upgrade the prp-nas Android bridge (android_bridge/) to the version that exported it");
        }
        check(m.opt("input"), INPUT, "manifest.input", errors);
        JSONArray paths = m.optJSONArray("paths");
        JSONObject files = m.optJSONObject("files");
        if (paths.length() == 0) {
            errors.add("manifest.paths is empty");
        }
        Set<Object> methods = new HashSet<Object>();
        List<Double> accuracies = new ArrayList<Double>();
        boolean allNumeric = true;
        for (int k = 0; k < paths.length(); k++) {
            Object path = paths.opt(k);
            String where = "manifest.paths[" + k + "]";
            check(path, PATH, where, errors);
            if (!(path instanceof JSONObject)) {
                continue;
            }
            JSONObject p = (JSONObject) path;
            methods.add(p.opt("method"));
            Object onnx = p.opt("onnx");
            if (onnx instanceof String && !files.has((String) onnx)) {
                errors.add(where + ".onnx '" + onnx + "' is not listed in files");
            }
            Object accuracy = p.opt("accuracy");
            if (JsonKind.NUMBER.accepts(accuracy)) {
                accuracies.add(((Number) accuracy).doubleValue());
            } else {
                allNumeric = false;
            }
        }
        if (methods.size() != paths.length()) {
            errors.add("manifest.paths have duplicate method names");
        }
        if (allNumeric) {
            for (int k = 1; k < accuracies.size(); k++) {
                if (accuracies.get(k) > accuracies.get(k - 1)) {
                    errors.add("manifest.paths must be ordered from most to least accurate");
                    break;
                }
            }
        }
        Iterator<String> names = files.keys();
        while (names.hasNext()) {
            String name = names.next();
            Object digest = files.opt(name);
            if (!(digest instanceof String && ((String) digest).length() == 64)) {
                errors.add("manifest.files['" + name + "'] must be a sha256 hex digest");
            }
        }
        errors.addAll(Ladder.errors(m));
        return errors;
    }
}
