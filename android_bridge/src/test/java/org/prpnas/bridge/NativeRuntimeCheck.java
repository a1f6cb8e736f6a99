package org.prpnas.bridge;

import java.io.File;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import org.json.JSONArray;
import org.json.JSONObject;

/**
 * Command line, end to end: loads a bundle the way an app does ({@link Manifest#load}: validation
 * and every file's sha256), runs it through {@link SupernetRuntime} on {@link NativeEngine} (JNI over
 * ExecuTorch's C++ runtime; the library comes from {@code -Dprp.native.lib=...}), and writes what
 * came out, so a test can compare it with the Python runtime's {@code AdaptiveModel} on the same
 * 8-bit images.
 *
 * <pre>
 * java -Dprp.native.lib=libprp_native.so -cp ... org.prpnas.bridge.NativeRuntimeCheck \
 *     BUNDLE_DIR IMAGES.u8 COUNT OUT_DIR LEVEL...
 * </pre>
 *
 * <p>IMAGES.u8 holds COUNT images, 8-bit RGB, NHWC; every call passes them all to
 * {@link SupernetRuntime#predictImages}, so the runtime's own preprocessing runs too. The runtime
 * follows the manifest's battery policy with a {@link PushedBattery} (no reading at first) and a
 * clock standing at 0 h, so only a new reading makes it decide again. First, for each LEVEL (a
 * percentage, or {@code none} for no reading) it pushes the level and predicts:
 * {@code OUT_DIR/battery_I.f32}. Then it pins every path of the manifest in turn with
 * {@link SupernetRuntime#switchTo} and predicts: {@code OUT_DIR/PATH.f32}. Logits are float32
 * little-endian, COUNT x classes. Prints one JSON object: the paths, every call's path and labels,
 * and the switch log.
 */
public final class NativeRuntimeCheck {
    private NativeRuntimeCheck() {}

    /** @param args bundle folder, image bytes, image count, output folder, battery levels */
    public static void main(String[] args) throws Exception {
        if (args.length < 4) {
            System.err.println("usage: NativeRuntimeCheck BUNDLE_DIR IMAGES.u8 COUNT OUT_DIR LEVEL...");
            System.exit(64);
        }
        Manifest manifest = Manifest.load(new File(args[0]));
        byte[] pixels = Files.readAllBytes(new File(args[1]).toPath());
        int count = Integer.parseInt(args[2]);
        File out = new File(args[3]);
        if (!out.isDirectory() && !out.mkdirs()) {
            throw new IllegalStateException("cannot create " + out);
        }

        NativeEngine engine = NativeEngine.load(manifest.programFile().getPath());
        PushedBattery battery = new PushedBattery();
        SupernetRuntime runtime = SupernetRuntime.builder(manifest, engine)
                .policy("battery")
                .battery(battery)
                .clock(new ManualClock(0.0))
                .build();
        JSONObject report = new JSONObject();
        report.put("engine", engine.getClass().getSimpleName());
        report.put("methods", new JSONArray(engine.methods()));
        report.put("paths", new JSONArray(manifest.ids()));
        report.put("initial_path", runtime.currentPath());
        try {
            JSONArray byLevel = new JSONArray();
            for (int i = 4; i < args.length; i++) {
                Double level = args[i].equals("none") ? null : Double.valueOf(args[i]);
                battery.push(level);
                Prediction p = runtime.predictImages(pixels, count);
                write(new File(out, "battery_" + (i - 4) + ".f32"), p.logits());
                byLevel.put(call(p).put("level", level == null ? JSONObject.NULL : level));
            }
            report.put("battery", byLevel);

            JSONObject pinned = new JSONObject();
            for (String id : manifest.ids()) {
                runtime.switchTo(id, "check");
                Prediction p = runtime.predictImages(pixels, count);
                write(new File(out, id + ".f32"), p.logits());
                pinned.put(id, call(p));
            }
            report.put("pinned", pinned);

            JSONArray switches = new JSONArray();
            for (PathSwitch s : runtime.switches()) {
                JSONArray row = new JSONArray();
                row.put(s.fromPath() == null ? JSONObject.NULL : s.fromPath());
                row.put(s.toPath());
                row.put(s.batteryPct() == null ? JSONObject.NULL : s.batteryPct());
                switches.put(row);
            }
            report.put("switches", switches);
        } finally {
            runtime.close();
        }
        System.out.println(report.toString());
    }

    private static JSONObject call(Prediction p) throws Exception {
        JSONArray labels = new JSONArray();
        for (int label : p.labels()) {
            labels.put(label);
        }
        return new JSONObject().put("path", p.path()).put("labels", labels).put("rows", p.batch());
    }

    private static void write(File file, float[] values) throws Exception {
        ByteBuffer bytes = ByteBuffer.allocate(4 * values.length).order(ByteOrder.LITTLE_ENDIAN);
        bytes.asFloatBuffer().put(values);
        Files.write(file.toPath(), bytes.array());
    }
}
