package org.prpnas.bridge;

import java.io.File;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.Charset;
import org.json.JSONObject;

/** The shipped bundle ({@code exported/default}, or {@code -Dprp.bundle=DIR}) and copies of it. */
final class Bundles {
    private Bundles() {}

    static File shipped() {
        File dir = new File(System.getProperty("prp.bundle", "exported/default"));
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

    /** A manifest parsed from JSON (no files), for schema and policy tests. */
    static Manifest parse(JSONObject json) throws BundleException {
        return Manifest.parse(json.toString(), null, "test manifest");
    }
}
