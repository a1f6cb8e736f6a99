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
 * from most to least accurate with distinct methods, and a sha256 per listed file. Every listed
 * name and every path's {@code onnx} must be a plain file name ({@link #plainNameProblem}), and
 * every file a backend reads ({@code supernet.pte}, {@code weights.bin}, the graphs) must be listed,
 * so nothing unchecked is read and nothing outside the bundle folder is named.
 */
public final class ManifestSchema {
    /**
     * The newest manifest {@code schema_version} this library reads (2: the policy tables must be
     * ladders, {@link Ladder}).
     */
    public static final int SCHEMA_VERSION = 2;

    /** A path's {@code precision} when the manifest does not give one. */
    public static final String FLOAT32 = "float32";

    /** The values a path's optional {@code precision} may take (Python: {@code bundle.PRECISIONS}). */
    public static final List<String> PRECISIONS =
            Collections.unmodifiableList(java.util.Arrays.asList(FLOAT32, "int8"));

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

    /**
     * Why {@code name} cannot be a bundle file name, or {@code null} when it is a plain file name:
     * one component, no separator, not {@code .} or {@code ..}, no control characters, so it can
     * neither be absolute nor climb out of the bundle folder on any platform (Python:
     * {@code prp.runtime.bundle.plain_name_problem}, same words).
     *
     * @param name a file name from the manifest (any JSON value)
     * @return the problem, worded to follow the name in a message, or {@code null}
     */
    public static String plainNameProblem(Object name) {
        if (!(name instanceof String) || ((String) name).isEmpty()) {
            return "must be a non-empty string";
        }
        String s = (String) name;
        if (s.contains("/") || s.contains("\\") || s.contains(":") || s.equals(".") || s.equals("..")) {
            return "must be a plain file name inside the bundle folder (no '/', '\\', ':' or '..')";
        }
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c < 32 || c == 127) {
                return "must not contain control characters";
            }
        }
        return null;
    }

    /**
     * {@code value} in single quotes with backslashes and control characters escaped (as Python's
     * {@code repr} shows a name), so a hostile name cannot split or forge a message line.
     */
    static String quote(Object value) {
        String s = String.valueOf(value);
        StringBuilder sb = new StringBuilder(s.length() + 2).append('\'');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '\\') {
                sb.append("\\\\");
            } else if (c == '\n') {
                sb.append("\\n");
            } else if (c == '\r') {
                sb.append("\\r");
            } else if (c == '\t') {
                sb.append("\\t");
            } else if (c < 32 || c == 127) {
                sb.append(String.format(java.util.Locale.ROOT, "\\x%02x", (int) c));
            } else {
                sb.append(c);
            }
        }
        return sb.append('\'').toString();
    }

    private static boolean isSha256(Object digest) {
        if (!(digest instanceof String) || ((String) digest).length() != 64) {
            return false;
        }
        String d = (String) digest;
        for (int i = 0; i < d.length(); i++) {
            char c = d.charAt(i);
            if (!(c >= '0' && c <= '9' || c >= 'a' && c <= 'f')) {
                return false;
            }
        }
        return true;
    }

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
            // Optional fields of int8 exports; absent means a float32 path.
            if (p.has("precision") && !PRECISIONS.contains(p.opt("precision"))) {
                errors.add(where + ".precision must be 'float32' or 'int8', got " + quote(p.opt("precision")));
            }
            if (p.has("fp32_test_accuracy") && !JsonKind.NUMBER.accepts(p.opt("fp32_test_accuracy"))) {
                errors.add(where + ".fp32_test_accuracy is a " + JsonKind.nameOf(p.opt("fp32_test_accuracy"))
                        + "; expected number");
            }
            Object onnx = p.opt("onnx");
            if (onnx instanceof String && plainNameProblem(onnx) != null) {
                errors.add(where + ".onnx must be a plain file name, got " + quote(onnx));
            } else if (onnx instanceof String && !files.has((String) onnx)) {
                errors.add(where + ".onnx " + quote(onnx) + " is not listed in files");
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
        if (files.length() == 0) {
            errors.add("manifest.files is empty");
        }
        Iterator<String> names = files.keys();
        while (names.hasNext()) {
            String name = names.next();
            String problem = plainNameProblem(name);
            if (problem != null) {
                errors.add("manifest.files name " + quote(name) + " " + problem);
            }
            if (!isSha256(files.opt(name))) {
                errors.add("manifest.files[" + quote(name) + "] must be a sha256 hex digest");
            }
        }
        // Everything a backend reads must be checksummed: the ExecuTorch program, and the weights
        // every ONNX graph reads (the bridge reads only the program, but the bundle contract is one).
        if (!files.has(Manifest.PROGRAM_FILE)) {
            errors.add("manifest.files does not list " + Manifest.PROGRAM_FILE
                    + ", which the ExecuTorch backend reads");
        }
        if (!files.has(Manifest.WEIGHTS_FILE)) {
            errors.add("manifest.files does not list " + Manifest.WEIGHTS_FILE + ", which the ONNX graphs read");
        }
        // Optional: the paired tests the ladder was built from (Ladder.passedPairs reads the pairs).
        if (m.has("ladder_tests") && !(m.opt("ladder_tests") instanceof JSONObject)) {
            errors.add("manifest.ladder_tests is a " + JsonKind.nameOf(m.opt("ladder_tests"))
                    + "; expected object (the paired tests the ladder was built from)");
        }
        errors.addAll(Ladder.errors(m));
        return errors;
    }
}
