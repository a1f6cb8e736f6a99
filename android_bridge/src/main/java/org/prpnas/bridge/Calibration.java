package org.prpnas.bridge;

import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.Charset;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import org.json.JSONException;
import org.json.JSONObject;
import org.json.JSONTokener;

/**
 * A calibration file the Python runtime writes ({@code prp-calibrate}, {@code prp.runtime.calibration}):
 * what each path of one bundle costs on one device, keyed by the sha256 of the bundle's
 * {@code manifest.json}. {@link #load} checks it against the bundle; {@link MeasuredCosts} plans
 * with it.
 */
public final class Calibration {
    /** The file's {@code format} and the {@code version} this library reads. */
    public static final String FORMAT = "prp-nas calibration";
    public static final int VERSION = 1;
    private static final int MAX_BYTES = 4 << 20;

    private final String manifestSha256;
    private final String backend;
    private final String energySource;
    private final Map<String, Double> latencyMs;
    private final Map<String, Double> energyMj;

    private Calibration(String sha, String backend, String energySource, Map<String, Double> latencyMs,
            Map<String, Double> energyMj) {
        this.manifestSha256 = sha;
        this.backend = backend;
        this.energySource = energySource;
        this.latencyMs = Collections.unmodifiableMap(latencyMs);
        this.energyMj = Collections.unmodifiableMap(energyMj);
    }

    /**
     * The calibration in {@code file}, checked against {@code manifest}.
     *
     * @throws CalibrationException (one line naming the file, the problem and the fix) for a file of
     *     another bundle, a missing path, or a figure that is not a finite number (latency > 0,
     *     energy >= 0); the caller goes on with the manifest's costs
     */
    public static Calibration load(File file, Manifest manifest) throws CalibrationException {
        String fix = "measure again with prp-calibrate " + manifest.directory();
        JSONObject data;
        try {
            if (!file.isFile()) {
                throw new CalibrationException("calibration " + file + " is not a file; " + fix);
            }
            data = new JSONObject(new JSONTokener(read(file)));
        } catch (IOException | JSONException e) {
            throw new CalibrationException("calibration " + file + " is unusable (" + e.getMessage() + "); " + fix);
        }
        if (!FORMAT.equals(data.opt("format")) || !Integer.valueOf(VERSION).equals(data.opt("version"))) {
            throw new CalibrationException("calibration " + file + " is unusable (not a " + FORMAT + " file of version "
                    + VERSION + "); " + fix);
        }
        String want;
        try {
            want = Checksums.sha256(new File(manifest.directory(), Manifest.FILE_NAME));
        } catch (IOException e) {
            throw new CalibrationException("cannot read the manifest of " + manifest.directory() + ": " + e.getMessage());
        }
        String sha = data.optString("manifest_sha256", "");
        if (!sha.equals(want)) {
            throw new CalibrationException("calibration " + file + " is of another bundle (manifest sha256 "
                    + (sha.length() > 16 ? sha.substring(0, 16) : sha) + "..., " + manifest.directory() + " has "
                    + want.substring(0, 16) + "...); " + fix);
        }
        JSONObject paths = data.optJSONObject("paths");
        Map<String, Double> latency = new LinkedHashMap<String, Double>();
        Map<String, Double> energy = new LinkedHashMap<String, Double>();
        for (String id : manifest.ids()) {
            JSONObject p = paths == null ? null : paths.optJSONObject(id);
            if (p == null) {
                throw new CalibrationException("calibration " + file + " is unusable (it does not measure " + id
                        + "); " + fix);
            }
            latency.put(id, number(p, "latency_ms", true, file, id, fix));
            energy.put(id, number(p, "energy_mj", false, file, id, fix));
        }
        return new Calibration(sha, data.optString("backend"), data.optString("energy_source"), latency, energy);
    }

    private static double number(JSONObject p, String key, boolean positive, File file, String id, String fix)
            throws CalibrationException {
        Object v = p.opt(key);
        double d = v instanceof Number ? ((Number) v).doubleValue() : Double.NaN;
        if (!(v instanceof Number) || Double.isNaN(d) || Double.isInfinite(d) || (positive ? d <= 0 : d < 0)) {
            throw new CalibrationException("calibration " + file + " is unusable (paths." + id + "." + key + " is " + v
                    + ", not a finite number " + (positive ? "> 0" : ">= 0") + "); " + fix);
        }
        return d;
    }

    private static String read(File file) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        byte[] buffer = new byte[1 << 14];
        InputStream in = new FileInputStream(file);
        try {
            for (int n = in.read(buffer); n >= 0; n = in.read(buffer)) {
                bytes.write(buffer, 0, n);
                if (bytes.size() > MAX_BYTES) {
                    throw new IOException("larger than " + (MAX_BYTES >> 20) + " MiB");
                }
            }
        } finally {
            in.close();
        }
        return new String(bytes.toByteArray(), Charset.forName("UTF-8"));
    }

    /** The sha256 of the manifest it measured. */
    public String manifestSha256() {
        return manifestSha256;
    }

    /** The backend it measured with. */
    public String backend() {
        return backend;
    }

    /** Where its energy comes from: a meter's source, or {@code latency x power}. */
    public String energySource() {
        return energySource;
    }

    /** Median latency per image of each path, ms. */
    public Map<String, Double> latencyMs() {
        return latencyMs;
    }

    /** Energy per image of each path, mJ. */
    public Map<String, Double> energyMj() {
        return energyMj;
    }
}
