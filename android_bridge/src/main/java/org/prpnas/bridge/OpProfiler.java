package org.prpnas.bridge;

import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.Charset;
import java.nio.charset.CodingErrorAction;
import java.text.SimpleDateFormat;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Date;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TimeZone;
import org.json.JSONArray;
import org.json.JSONException;
import org.json.JSONObject;
import org.json.JSONTokener;

/**
 * Measures a search space's per-op cost table on this device, from a profile kit, in the format
 * the trainer's {@code --cost-model lut --cost-lut TABLE} reads: {@code prp-profile}'s, on a phone.
 *
 * <p>The kit ({@code prp-profile --space S --kit DIR} on a desktop) holds {@code ops.pte}, one
 * ExecuTorch method per op signature of the space plus the call-overhead and layout-conversion
 * programs, lowered as {@code prp-profile} lowers them, and {@code kit.json}, which says which
 * method is which. This class runs every method on any {@link InferenceEngine} ({@code
 * ExecuTorchEngine} on Android, {@code NativeEngine} on a desktop): {@code warmup} untimed calls,
 * then {@code repeats} calls timed with {@link System#nanoTime}; the median and quartiles are kept.
 * The table's {@code ops} are corrected exactly as {@code prp-profile}'s ({@code
 * device_profile.assemble_table}): each op loses one call's overhead and half the NCHW/NHWC
 * conversions of its input and output shapes, and the call plus the network input's conversion
 * are added once to the fixed op every path runs ({@code overhead_folded_into}).
 *
 * <pre>{@code
 * OpProfiler.Kit kit = OpProfiler.Kit.load(new File(getFilesDir(), "kit"));
 * try (ExecuTorchEngine engine = ExecuTorchEngine.open(kit.programFile(), 1)) {
 *     OpProfiler.profile(kit, engine, new File(getFilesDir(), "my_phone.json"),
 *             new OpProfiler.Options().threads(1).device(Build.MANUFACTURER + " " + Build.MODEL));
 * }
 * }</pre>
 *
 * <p>Run it off the main thread; it takes about as long as {@code prp-profile} on the desktop
 * (each method {@code warmup + repeats} calls). Interrupting the thread stops it between two
 * methods with {@link InterruptedException}; nothing is written then.
 */
public final class OpProfiler {
    /** The kit's description inside the kit folder. */
    public static final String KIT_FILE = "kit.json";

    static final String KIT_FORMAT = "prp-profile-kit";
    static final int KIT_VERSION = 1;
    static final String TABLE_FORMAT = "prp-profile";
    static final int TABLE_VERSION = 1;
    private static final int MAX_KIT_BYTES = 16 << 20;
    private static final int MAX_TABLE_BYTES = 64 << 20;

    private OpProfiler() {}

    /** Told after each measured method (for a progress bar). */
    public interface Progress {
        /**
         * @param what the signature (or helper program) just measured
         * @param done methods measured so far
         * @param total methods to measure
         */
        void step(String what, int done, int total);
    }

    /** How to measure and what to record; every setter returns {@code this}. */
    public static final class Options {
        private int threads = 1;
        private String device;
        private String backend;
        private int warmup = -1;
        private int repeats = -1;
        private String spaceName;
        private String spaceSize;
        private Progress progress;

        /**
         * The thread count the engine runs with (recorded in the table; default 1). Open the engine
         * with the same count: {@code ExecuTorchEngine.open(program, threads)}, or {@code
         * NativeEngine.setThreads(threads)}.
         */
        public Options threads(int threads) {
            if (threads < 1) {
                throw new IllegalArgumentException("threads must be >= 1, got " + threads);
            }
            this.threads = threads;
            return this;
        }

        /** The device's name in the table, e.g. {@code Build.MANUFACTURER + " " + Build.MODEL}. */
        public Options device(String device) {
            this.device = device;
            return this;
        }

        /**
         * The backend's name in the table; by default {@code executorch-android} for {@code
         * ExecuTorchEngine} and {@code executorch-native} for {@code NativeEngine}.
         */
        public Options backend(String backend) {
            this.backend = backend;
            return this;
        }

        /** Untimed calls before timing; by default the kit's ({@code prp-profile --warmup}). */
        public Options warmup(int warmup) {
            if (warmup < 0) {
                throw new IllegalArgumentException("warmup must be >= 0, got " + warmup);
            }
            this.warmup = warmup;
            return this;
        }

        /** Timed calls per method; by default the kit's ({@code prp-profile --repeats}). */
        public Options repeats(int repeats) {
            if (repeats < 1) {
                throw new IllegalArgumentException("repeats must be >= 1, got " + repeats);
            }
            this.repeats = repeats;
            return this;
        }

        /** Refuse a kit of another space than {@code name} at {@code size} (e.g. nb201, real). */
        public Options space(String name, String size) {
            this.spaceName = name;
            this.spaceSize = size;
            return this;
        }

        /** Called after each measured method. */
        public Options progress(Progress progress) {
            this.progress = progress;
            return this;
        }
    }

    /** One method of the kit's program and what it computes. */
    private static final class KitMethod {
        final String method;
        final String label; // the signature, or what a helper program measures
        final long[] inShape;
        final long outValues;

        KitMethod(String method, String label, long[] inShape, long outValues) {
            this.method = method;
            this.label = label;
            this.inShape = inShape;
            this.outValues = outValues;
        }
    }

    /** A kit folder, read and checked: its {@code kit.json} and the sha256 of its program. */
    public static final class Kit {
        private final File directory;
        private final File program;
        private final JSONObject data;
        private final JSONObject space;
        private final int warmup;
        private final int repeats;
        private final long seed;
        private final KitMethod overhead;
        private final Map<String, KitMethod[]> layouts; // shape key -> {one, two}
        private final List<KitMethod> ops;
        private final List<JSONObject> opEntries;
        private final List<String> freeOps;
        private final String foldTarget;
        private final long[] networkInput;

        private Kit(File directory, JSONObject data, String where) throws JSONException, ProfileException {
            this.directory = directory;
            this.data = data;
            this.space = data.getJSONObject("space");
            space.getString("name");
            space.getString("size");
            this.warmup = data.getInt("warmup");
            this.repeats = data.getInt("repeats");
            if (warmup < 0 || repeats < 1) {
                throw new ProfileException(where + " asks for warmup " + warmup + " and repeats " + repeats
                        + "; build the kit again with --warmup >= 0 and --repeats >= 1");
            }
            this.seed = data.getLong("seed");
            JSONObject call = data.getJSONObject("call_overhead");
            long[] callShape = shape(call.getJSONArray("in_shape"));
            this.overhead = new KitMethod(call.getString("method"), "call overhead", callShape, count(callShape));
            this.layouts = new LinkedHashMap<String, KitMethod[]>();
            JSONArray baselines = data.getJSONArray("layout_baselines");
            for (int i = 0; i < baselines.length(); i++) {
                JSONObject b = baselines.getJSONObject(i);
                String key = b.getString("shape");
                long[] in = shape(b.getJSONArray("in_shape"));
                layouts.put(key, new KitMethod[] {
                    new KitMethod(b.getString("one"), "layout " + key + " (one conv)", in, count(in)),
                    new KitMethod(b.getString("two"), "layout " + key + " (two convs)", in, count(in)),
                });
            }
            this.ops = new ArrayList<KitMethod>();
            this.opEntries = new ArrayList<JSONObject>();
            JSONArray entries = data.getJSONArray("ops");
            for (int i = 0; i < entries.length(); i++) {
                JSONObject op = entries.getJSONObject(i);
                long[] in = shape(op.getJSONArray("in_shape"));
                long[] out = shape(op.getJSONArray("out_shape"));
                op.getInt("uses");
                ops.add(new KitMethod(op.getString("method"), op.getString("signature"), in, count(out)));
                opEntries.add(op);
            }
            this.freeOps = new ArrayList<String>();
            JSONArray free = data.getJSONArray("free_ops");
            for (int i = 0; i < free.length(); i++) {
                freeOps.add(free.getString(i));
            }
            this.foldTarget = data.isNull("overhead_folded_into") ? null : data.getString("overhead_folded_into");
            this.networkInput = shape(data.getJSONArray("network_input"));
            String name = data.getString("program");
            if (name.isEmpty() || name.contains("/") || name.contains(File.separator) || name.startsWith(".")) {
                throw new ProfileException(where + " names the program '" + name
                        + "', not a plain file name in the kit folder; build the kit again");
            }
            this.program = new File(directory, name);
        }

        /**
         * Reads {@code directory/kit.json} and checks that the program beside it is the one the kit
         * was built with (sha256).
         *
         * @throws ProfileException if the folder, {@code kit.json} or the program is missing,
         *     damaged, or of a version this bridge does not read
         */
        public static Kit load(File directory) throws ProfileException {
            File file = new File(directory, KIT_FILE);
            String rebuild = "; build the kit with prp-profile --space S --kit DIR and copy the whole folder";
            if (!directory.isDirectory()) {
                throw new ProfileException("profile kit " + directory + " does not exist or is not a folder"
                        + rebuild);
            }
            if (!file.isFile()) {
                throw new ProfileException(file + " is missing: " + directory + " is not a profile kit" + rebuild);
            }
            JSONObject data = readObject(file, MAX_KIT_BYTES, "a profile kit" + rebuild);
            if (!KIT_FORMAT.equals(data.opt("format"))) {
                throw new ProfileException(file + " is not a profile kit (no \"format\": \"" + KIT_FORMAT + "\")"
                        + rebuild);
            }
            if (!Integer.valueOf(KIT_VERSION).equals(data.opt("version"))) {
                throw new ProfileException(file + " is a profile kit of version " + data.opt("version")
                        + "; this bridge reads version " + KIT_VERSION
                        + ": build the kit with the prp-profile of this bridge's release");
            }
            if (!TABLE_FORMAT.equals(data.opt("table_format"))
                    || !Integer.valueOf(TABLE_VERSION).equals(data.opt("table_version"))) {
                throw new ProfileException(file + " asks for tables of format " + data.opt("table_format")
                        + " version " + data.opt("table_version") + "; this bridge writes " + TABLE_FORMAT
                        + " version " + TABLE_VERSION + ": build the kit with the prp-profile of this bridge's release");
            }
            Kit kit;
            try {
                kit = new Kit(directory, data, file.toString());
            } catch (JSONException e) {
                throw new ProfileException(file + " is damaged (" + Manifest.shortSyntaxError(e.getMessage()) + ")"
                        + rebuild, e);
            }
            String want = data.optString("program_sha256");
            String have;
            try {
                if (!kit.program.isFile()) {
                    throw new ProfileException(kit.program + " is missing or not a regular file" + rebuild);
                }
                have = Checksums.sha256(kit.program);
            } catch (IOException e) {
                throw new ProfileException("cannot read " + kit.program + " (" + e.getMessage() + ")" + rebuild, e);
            }
            if (!have.equals(want)) {
                throw new ProfileException(kit.program + " is not the program " + file + " describes (sha256 "
                        + have + ", the kit says " + want + ")" + rebuild);
            }
            return kit;
        }

        /** The kit folder. */
        public File directory() {
            return directory;
        }

        /** The kit's program ({@code ops.pte}): open the engine on it. */
        public File programFile() {
            return program;
        }

        /** The search space the kit measures, e.g. {@code nb201}. */
        public String spaceName() {
            return space.optString("name");
        }

        /** The space's size, {@code real} or {@code tiny}. */
        public String spaceSize() {
            return space.optString("size");
        }

        /** The methods to run, in order: the helper programs, then one per op signature. */
        public List<String> methods() {
            List<String> out = new ArrayList<String>();
            for (KitMethod m : measured()) {
                out.add(m.method);
            }
            return out;
        }

        /** The op signatures the table will price (measured and free). */
        public int signatures() {
            return ops.size() + freeOps.size();
        }

        /**
         * @throws ProfileException if the kit was built for another space or size than asked
         */
        public void requireSpace(String name, String size) throws ProfileException {
            if ((name != null && !name.equals(spaceName())) || (size != null && !size.equals(spaceSize()))) {
                String wanted = (name == null ? spaceName() : name) + " (" + (size == null ? spaceSize() : size)
                        + ")";
                throw new ProfileException("profile kit " + directory + " is for space " + label(space) + ", not "
                        + wanted + ": its programs would not price that space; build one with prp-profile --space "
                        + (name == null ? spaceName() : name) + " --size " + (size == null ? spaceSize() : size)
                        + " --kit DIR");
            }
        }

        private List<KitMethod> measured() {
            List<KitMethod> out = new ArrayList<KitMethod>();
            out.add(overhead);
            for (KitMethod[] pair : layouts.values()) {
                out.addAll(Arrays.asList(pair));
            }
            out.addAll(ops);
            return out;
        }
    }

    /**
     * Measures {@code kit} on {@code engine} and writes the table to {@code out} (atomically:
     * a temporary file beside it, renamed into place). {@code out} is checked before anything is
     * measured: it may only replace a table of the same space that {@code prp-profile} or this
     * class wrote.
     *
     * @return the table written
     */
    public static JSONObject profile(Kit kit, InferenceEngine engine, File out, Options options)
            throws ProfileException, InterruptedException {
        checkReplaceable(out, kit.space);
        JSONObject table = measure(kit, engine, options);
        write(table, out);
        return table;
    }

    /**
     * Measures {@code kit} on {@code engine} and returns the table (nothing is written).
     *
     * @throws ProfileException if the kit is of another space than {@link Options#space} asks,
     *     or the engine's program is not the kit's
     * @throws InterruptedException if the calling thread is interrupted (checked between methods)
     */
    public static JSONObject measure(Kit kit, InferenceEngine engine, Options options)
            throws ProfileException, InterruptedException {
        kit.requireSpace(options.spaceName, options.spaceSize);
        List<String> missing = new ArrayList<String>();
        Set<String> have = engine.methods();
        for (String method : kit.methods()) {
            if (!have.contains(method)) {
                missing.add(method);
            }
        }
        if (!missing.isEmpty()) {
            throw new ProfileException("the engine's program has no method " + missing.get(0) + " (" + missing.size()
                    + " of the kit's " + kit.methods().size() + " are missing): it is not " + kit.programFile()
                    + "; open the kit's own program, e.g. ExecuTorchEngine.open(kit.programFile(), threads)");
        }
        int warmup = options.warmup >= 0 ? options.warmup : kit.warmup;
        int repeats = options.repeats >= 1 ? options.repeats : kit.repeats;
        long started = System.nanoTime();
        List<KitMethod> methods = kit.measured();
        Map<String, double[]> timed = new LinkedHashMap<String, double[]>();
        for (KitMethod m : methods) {
            if (Thread.interrupted()) {
                throw new InterruptedException("profiling was interrupted; nothing was written");
            }
            timed.put(m.method, time(engine, m, warmup, repeats, kit.seed));
            if (options.progress != null) {
                options.progress.step(m.label, timed.size(), methods.size());
            }
        }
        double seconds = (System.nanoTime() - started) / 1e9;
        try {
            return table(kit, engine, options, timed, warmup, repeats, seconds);
        } catch (JSONException e) { // only non-finite numbers are refused, and timings are finite
            throw new IllegalStateException("cannot write the table: " + e.getMessage(), e);
        }
    }

    /** Median, 25th and 75th percentile in ms of {@code repeats} timed calls after {@code warmup}. */
    private static double[] time(InferenceEngine engine, KitMethod m, int warmup, int repeats, long seed)
            throws ProfileException {
        float[] input = new float[(int) count(m.inShape)];
        Random random = new Random(seed); // latency does not depend on the values of float32 data
        for (int i = 0; i < input.length; i++) {
            input[i] = (float) random.nextGaussian();
        }
        double[] ms = new double[repeats];
        try {
            for (int i = 0; i < warmup; i++) {
                engine.run(m.method, input, m.inShape);
            }
            for (int i = 0; i < repeats; i++) {
                long t0 = System.nanoTime();
                float[] result = engine.run(m.method, input, m.inShape);
                ms[i] = (System.nanoTime() - t0) / 1e6;
                if (i == 0 && result.length != m.outValues) {
                    throw new ProfileException("method " + m.method + " (" + m.label + ") returned " + result.length
                            + " values where the kit's program returns " + m.outValues
                            + ": the engine's program is not the kit's; open the kit's own program");
                }
            }
        } catch (IllegalArgumentException e) {
            throw new ProfileException("method " + m.method + " (" + m.label + ") does not take the kit's input "
                    + Arrays.toString(m.inShape) + " (" + e.getMessage()
                    + "): the engine's program is not the kit's; open the kit's own program", e);
        }
        Arrays.sort(ms);
        // Rounded as prp-profile records them, and corrected from the recorded figures as there.
        return new double[] {
            round(percentile(ms, 0.5), 6), round(percentile(ms, 0.25), 6), round(percentile(ms, 0.75), 6),
        };
    }

    /** numpy's default (linear) percentile of sorted values, {@code q} in [0, 1]. */
    static double percentile(double[] sorted, double q) {
        double at = q * (sorted.length - 1);
        int low = (int) Math.floor(at);
        int high = Math.min(low + 1, sorted.length - 1);
        return sorted[low] + (sorted[high] - sorted[low]) * (at - low);
    }

    private static JSONObject table(Kit kit, InferenceEngine engine, Options options, Map<String, double[]> timed,
            int warmup, int repeats, double seconds) throws JSONException {
        double base = timed.get(kit.overhead.method)[0];
        JSONObject baselines = new JSONObject();
        Map<String, Double> convert = new LinkedHashMap<String, Double>();
        JSONObject conversion = new JSONObject();
        for (Map.Entry<String, KitMethod[]> e : kit.layouts.entrySet()) {
            double[] one = timed.get(e.getValue()[0].method);
            double[] two = timed.get(e.getValue()[1].method);
            baselines.put(e.getKey(), new JSONObject()
                    .put("one", timing(one, repeats))
                    .put("two", timing(two, repeats)));
            // (one identity conv) - (two minus one: the conv itself) - the call
            double cost = Math.max(one[0] - (two[0] - one[0]) - base, 0.0);
            convert.put(e.getKey(), cost);
            conversion.put(e.getKey(), round(cost, 6));
        }
        JSONObject measurements = new JSONObject();
        Map<String, Double> ops = new LinkedHashMap<String, Double>();
        for (int i = 0; i < kit.ops.size(); i++) {
            KitMethod m = kit.ops.get(i);
            JSONObject entry = kit.opEntries.get(i);
            double[] t = timed.get(m.method);
            measurements.put(m.label, timing(t, repeats)
                    .put("in_shape", entry.getJSONArray("in_shape"))
                    .put("uses", entry.getInt("uses")));
            double in = half(convert, entry.getJSONArray("in_shape"));
            double out = half(convert, entry.getJSONArray("out_shape"));
            ops.put(m.label, Math.max(t[0] - base - in - out, 0.0)); // assemble_table's order
        }
        for (String free : kit.freeOps) {
            ops.put(free, 0.0);
        }
        if (kit.foldTarget != null && ops.containsKey(kit.foldTarget)) {
            // What a path pays once (the call, the network input's conversion) goes to one fixed op.
            ops.put(kit.foldTarget, ops.get(kit.foldTarget) + (base + half(convert, kit.networkInput)));
        }
        JSONObject opsJson = new JSONObject();
        for (Map.Entry<String, Double> e : ops.entrySet()) {
            opsJson.put(e.getKey(), round(e.getValue(), 9));
        }
        JSONArray free = new JSONArray();
        List<String> sortedFree = new ArrayList<String>(kit.freeOps);
        Collections.sort(sortedFree);
        for (String s : sortedFree) {
            free.put(s);
        }

        JSONObject method = new JSONObject()
                .put("warmup", warmup)
                .put("repeats", repeats)
                .put("statistic", "median of the repeats; p25/p75 in measurements")
                .put("timer", "System.nanoTime around InferenceEngine.run, on the calling thread")
                .put("call_overhead", timing(timed.get(kit.overhead.method), repeats))
                .put("layout_baselines", baselines)
                .put("overhead_folded_into", kit.foldTarget == null ? JSONObject.NULL : kit.foldTarget)
                .put("layout_conversion_ms", conversion)
                .put("free_ops", free);
        JSONObject provenance = new JSONObject()
                .put("command", "org.prpnas.bridge.OpProfiler")
                .put("engine", engine.getClass().getSimpleName())
                .put("kit_program_sha256", kit.data.optString("program_sha256"))
                .put("kit", kit.data.optJSONObject("provenance") == null ? JSONObject.NULL
                        : kit.data.optJSONObject("provenance"))
                .put("java", System.getProperty("java.vm.name", "?") + " " + System.getProperty("java.version", "?"))
                .put("os", System.getProperty("os.name", "?") + " " + System.getProperty("os.version", "?"))
                .put("machine", System.getProperty("os.arch", "?"))
                .put("cpu_count", Runtime.getRuntime().availableProcessors())
                .put("seed", kit.seed);
        SimpleDateFormat iso = new SimpleDateFormat("yyyy-MM-dd'T'HH:mm:ss'+00:00'", Locale.ROOT);
        iso.setTimeZone(TimeZone.getTimeZone("UTC"));
        return new JSONObject()
                .put("format", TABLE_FORMAT)
                .put("version", TABLE_VERSION)
                .put("space", kit.space)
                .put("backend", options.backend != null ? options.backend : backendOf(engine))
                .put("threads", options.threads)
                .put("complete", true)
                .put("objective", "latency")
                .put("unit", "ms")
                .put("device", options.device != null ? options.device
                        : System.getProperty("os.name", "?") + " " + System.getProperty("os.arch", "?"))
                .put("date", iso.format(new Date()))
                .put("profiling_s", round(seconds, 2))
                .put("method", method)
                .put("measurements", measurements)
                .put("ops", opsJson)
                .put("provenance", provenance)
                .put("energy", "not measured: OpProfiler reads no energy counter; the table is latency only");
    }

    private static JSONObject timing(double[] t, int repeats) throws JSONException {
        return new JSONObject()
                .put("median_ms", round(t[0], 6))
                .put("p25_ms", round(t[1], 6))
                .put("p75_ms", round(t[2], 6))
                .put("repeats", repeats);
    }

    private static String backendOf(InferenceEngine engine) {
        String name = engine.getClass().getSimpleName();
        if (name.equals("ExecuTorchEngine")) {
            return "executorch-android";
        }
        if (name.equals("NativeEngine")) {
            return "executorch-native";
        }
        return "executorch-" + name;
    }

    /** Half the layout conversions at a program end of {@code shape} (4-D shapes only have one). */
    private static double half(Map<String, Double> convert, JSONArray shape) throws JSONException {
        return half(convert, shape(shape));
    }

    private static double half(Map<String, Double> convert, long[] shape) {
        StringBuilder key = new StringBuilder();
        for (long d : shape) {
            key.append(key.length() > 0 ? "x" : "").append(d);
        }
        Double cost = convert.get(key.toString());
        return cost == null ? 0.0 : cost / 2;
    }

    private static double round(double value, int digits) {
        return new java.math.BigDecimal(value).setScale(digits, java.math.RoundingMode.HALF_EVEN).doubleValue();
    }

    /**
     * Writes {@code table} to {@code out} atomically (a temporary file beside it, synced, renamed
     * into place), replacing only a table of the same space.
     */
    public static void write(JSONObject table, File out) throws ProfileException {
        JSONObject space = table.optJSONObject("space");
        if (space == null) {
            throw new IllegalArgumentException("not a profile table: it has no space");
        }
        checkReplaceable(out, space);
        File dir = out.getAbsoluteFile().getParentFile();
        if (dir != null && !dir.isDirectory() && !dir.mkdirs()) {
            throw new ProfileException("cannot create the folder " + dir + " for " + out + "; choose another file");
        }
        File tmp = null;
        try {
            String text;
            try {
                text = table.toString(2) + "\n";
            } catch (JSONException e) {
                throw new IllegalStateException("cannot write the table: " + e.getMessage(), e);
            }
            tmp = File.createTempFile("." + out.getName() + ".", ".tmp", dir);
            FileOutputStream stream = new FileOutputStream(tmp);
            try {
                stream.write(text.getBytes(Charset.forName("UTF-8")));
                stream.flush();
                stream.getFD().sync();
            } finally {
                stream.close();
            }
            if (!tmp.renameTo(out)) {
                throw new IOException("cannot rename " + tmp + " to " + out);
            }
            tmp = null;
        } catch (IOException e) {
            throw new ProfileException("cannot write " + out + " (" + e.getMessage() + "); check that the app may"
                    + " write there", e);
        } finally {
            if (tmp != null && !tmp.delete()) {
                tmp.deleteOnExit();
            }
        }
    }

    /** {@code out} may be written: absent, or a prp-profile table of the same space. */
    private static void checkReplaceable(File out, JSONObject space) throws ProfileException {
        if (out.isDirectory()) {
            throw new ProfileException(out + " is a folder; give the table a file name");
        }
        if (!out.exists()) {
            return;
        }
        String never = "; OpProfiler never overwrites other files: choose another file";
        JSONObject old;
        try {
            old = readObject(out, MAX_TABLE_BYTES, "a prp-profile table" + never);
        } catch (ProfileException e) {
            throw new ProfileException(out + " is not a prp-profile table" + never, e);
        }
        if (!TABLE_FORMAT.equals(old.opt("format"))) {
            throw new ProfileException(out + " is not a prp-profile table (no \"format\": \"" + TABLE_FORMAT + "\")"
                    + never);
        }
        JSONObject oldSpace = old.optJSONObject("space");
        if (oldSpace == null || !sameJson(oldSpace, space)) {
            throw new ProfileException(out + " holds a table for space "
                    + (oldSpace == null ? "?" : label(oldSpace)) + ", not " + label(space) + never);
        }
    }

    private static String label(JSONObject space) {
        return space.optString("name", "?") + " (" + space.optString("size", "?") + ")";
    }

    /** The same keys with the same values (as text), whatever the key order. */
    private static boolean sameJson(JSONObject a, JSONObject b) {
        if (a.length() != b.length()) {
            return false;
        }
        for (Iterator<String> keys = a.keys(); keys.hasNext();) {
            String key = keys.next();
            if (!b.has(key) || !String.valueOf(a.opt(key)).equals(String.valueOf(b.opt(key)))) {
                return false;
            }
        }
        return true;
    }

    private static long[] shape(JSONArray values) throws JSONException {
        long[] out = new long[values.length()];
        for (int i = 0; i < out.length; i++) {
            out[i] = values.getLong(i);
            if (out[i] < 1) {
                throw new JSONException("shape " + values + " has a dimension < 1");
            }
        }
        return out;
    }

    private static long count(long[] shape) {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        return n;
    }

    /** A JSON object from a UTF-8 file of at most {@code limit} bytes; {@code what} ends errors. */
    private static JSONObject readObject(File file, int limit, String what) throws ProfileException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try {
            InputStream in = new FileInputStream(file);
            try {
                byte[] buffer = new byte[1 << 14];
                for (int n = in.read(buffer); n >= 0; n = in.read(buffer)) {
                    bytes.write(buffer, 0, n);
                    if (bytes.size() > limit) {
                        throw new ProfileException(file + " is larger than " + (limit >> 20) + " MB: not " + what);
                    }
                }
            } finally {
                in.close();
            }
            String text = Charset.forName("UTF-8").newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(bytes.toByteArray()))
                    .toString();
            JSONTokener tokener = new JSONTokener(text);
            Object value = tokener.nextValue();
            if (!(value instanceof JSONObject) || tokener.nextClean() != 0) {
                throw new ProfileException(file + " is not one JSON object: not " + what);
            }
            return (JSONObject) value;
        } catch (CharacterCodingException e) {
            throw new ProfileException(file + " is not UTF-8 text: not " + what, e);
        } catch (JSONException e) {
            throw new ProfileException(file + " is not JSON (" + Manifest.shortSyntaxError(e.getMessage()) + "): not "
                    + what, e);
        } catch (IOException e) {
            throw new ProfileException("cannot read " + file + " (" + e.getMessage() + ")", e);
        }
    }
}
