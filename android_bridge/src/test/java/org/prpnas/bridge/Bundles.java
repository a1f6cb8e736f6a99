package org.prpnas.bridge;

import java.io.File;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.Charset;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.List;
import org.json.JSONArray;
import org.json.JSONException;
import org.json.JSONObject;

/**
 * The shipped bundle ({@code exported/smoke}, or {@code -Dprp.bundle=DIR}) and copies of it.
 *
 * <p>Tests take what they expect from the bundle's own manifest.json (read here as plain JSON,
 * not through the {@link Manifest} under test), never from literals of one export, so they hold
 * for any valid bundle; tests/test_android_bridge.py runs every suite on the shipped bundle and on
 * a variant of it with other tables.
 */
final class Bundles {
    private Bundles() {}

    static File shipped() {
        File dir = new File(System.getProperty("prp.bundle", "exported/smoke"));
        if (!new File(dir, Manifest.FILE_NAME).isFile()) {
            throw new IllegalStateException("the shipped bundle is not at " + dir.getAbsolutePath()
                    + "; run the tests from the repository root or pass -Dprp.bundle=DIR");
        }
        return dir;
    }

    static Manifest shippedManifest() throws BundleException {
        return Manifest.load(shipped());
    }

    static JSONObject shippedJson() throws BundleException {
        return shippedManifest().toJson();
    }

    /** A copy of the shipped bundle in {@code target}. */
    static File copy(File target) throws IOException {
        File[] files = shipped().listFiles();
        target.mkdirs();
        for (File f : files) {
            if (f.isFile()) {
                copyFile(f, new File(target, f.getName()));
            }
        }
        return target;
    }

    static void copyFile(File from, File to) throws IOException {
        InputStream in = new FileInputStream(from);
        OutputStream out = new FileOutputStream(to);
        try {
            byte[] buffer = new byte[1 << 16];
            for (int n = in.read(buffer); n >= 0; n = in.read(buffer)) {
                out.write(buffer, 0, n);
            }
        } finally {
            in.close();
            out.close();
        }
    }

    static void write(File file, String text) throws IOException {
        write(file, text.getBytes(Charset.forName("UTF-8")));
    }

    static void write(File file, byte[] bytes) throws IOException {
        OutputStream out = new FileOutputStream(file);
        try {
            out.write(bytes);
        } finally {
            out.close();
        }
    }

    /**
     * The shipped manifest's JSON as a latency-objective bundle whose latencies are its energies:
     * the same ladder, and energies free to be null (only the objective's cost must be there).
     */
    static JSONObject latencyObjectiveJson() throws BundleException, org.json.JSONException {
        JSONObject json = shippedJson().put("objective", "latency");
        org.json.JSONArray paths = json.getJSONArray("paths");
        for (int i = 0; i < paths.length(); i++) {
            paths.getJSONObject(i).put("latency_ms", paths.getJSONObject(i).get("energy_mj"));
        }
        return json;
    }

    /** The shipped manifest.json as plain JSON, read without the library's parser. */
    static JSONObject rawJson() throws IOException, JSONException {
        File file = new File(shipped(), Manifest.FILE_NAME);
        return new JSONObject(new String(Files.readAllBytes(file.toPath()), Charset.forName("UTF-8")));
    }

    /** The shipped paths' ids, most accurate first. */
    static List<String> ids() throws IOException, JSONException {
        List<String> ids = new ArrayList<String>();
        JSONArray paths = rawJson().getJSONArray("paths");
        for (int i = 0; i < paths.length(); i++) {
            ids.add(paths.getJSONObject(i).getString("id"));
        }
        return ids;
    }

    /** The shipped paths' ids, at least {@code n} of them (a clear failure where fewer). */
    static List<String> ids(int n, String why) throws IOException, JSONException {
        List<String> ids = ids();
        if (ids.size() < n) {
            throw new AssertionError(why + " needs a bundle of at least " + n + " paths; " + shipped()
                    + " has " + ids.size());
        }
        return ids;
    }

    /** The shipped battery table: its thresholds, paths and hysteresis. */
    static final class BatteryTable {
        final double[] thresholds;
        final List<String> paths = new ArrayList<String>();
        final double hysteresisPct;

        BatteryTable(JSONObject table) throws JSONException {
            JSONArray levels = table.getJSONArray("levels");
            thresholds = new double[levels.length()];
            for (int i = 0; i < levels.length(); i++) {
                thresholds[i] = levels.getJSONObject(i).getDouble("min_battery_pct");
                paths.add(levels.getJSONObject(i).getString("path"));
            }
            hysteresisPct = table.optDouble("hysteresis_pct", 3.0);
        }

        int size() {
            return paths.size();
        }

        /** Fails clearly where the test needs more levels than the table has. */
        BatteryTable atLeast(int n, String why) {
            if (size() < n) {
                throw new AssertionError(why + " needs a battery table of at least " + n + " levels; "
                        + shipped() + " has " + paths);
            }
            return this;
        }

        /** The level the battery reaches: the first whose threshold {@code pct} is at, else the last. */
        int index(double pct) {
            for (int i = 0; i < thresholds.length; i++) {
                if (pct >= thresholds[i]) {
                    return i;
                }
            }
            return thresholds.length - 1;
        }

        /**
         * The path the documented rule picks: no reading, the first level; down at once; up to a
         * more accurate level only with the battery {@code hysteresisPct} above its threshold.
         */
        String pick(Double pct, String current) {
            if (pct == null) {
                return paths.get(0);
            }
            int target = index(pct);
            int cur = current == null ? -1 : paths.indexOf(current);
            if (cur >= 0 && target < cur) {
                target = Math.min(index(pct - hysteresisPct), cur);
            }
            return paths.get(target);
        }
    }

    static BatteryTable battery() throws IOException, JSONException {
        return new BatteryTable(rawJson().getJSONObject("policies").getJSONObject("battery"));
    }

    /** The shipped schedule table: its order and period. */
    static final class ScheduleTable {
        final List<String> order = new ArrayList<String>();
        final double switchEveryH;

        ScheduleTable(JSONObject table) throws JSONException {
            JSONArray ids = table.getJSONArray("order");
            for (int i = 0; i < ids.length(); i++) {
                order.add(ids.getString(i));
            }
            switchEveryH = table.getDouble("switch_every_h");
        }

        /** The path of slot {@code floor(hours / switchEveryH)}, the last one after the end. */
        String pick(double hours) {
            int slot = (int) Math.floor(Math.max(hours, 0.0) / switchEveryH);
            return order.get(Math.min(slot, order.size() - 1));
        }
    }

    static ScheduleTable schedule() throws IOException, JSONException {
        return new ScheduleTable(rawJson().getJSONObject("policies").getJSONObject("schedule"));
    }

    /** A manifest parsed from JSON (no files), for schema and policy tests. */
    static Manifest parse(JSONObject json) throws BundleException {
        return Manifest.parse(json.toString(), null, "test manifest");
    }
}
