package org.prpnas.bridge;

import java.io.File;
import org.json.JSONObject;

/**
 * Command line, for desktop tests: {@link OpProfiler} on a profile kit through {@link NativeEngine}
 * (JNI over ExecuTorch's C++ runtime; the library comes from {@code -Dprp.native.lib=...}), as an
 * app runs it through {@code ExecuTorchEngine} on a phone.
 *
 * <pre>
 * java -Dprp.native.lib=libprp_native.so -cp ... org.prpnas.bridge.NativeProfileCheck KIT_DIR OUT \
 *     [--space NAME --size SIZE] [--warmup N] [--repeats N] [--threads N] [--program PTE]
 * </pre>
 *
 * <p>{@code --program} opens another program than the kit's (to check that it is refused). Prints
 * one JSON object: the table's path, the methods, threads and seconds, or {@code error} with the
 * {@link ProfileException}'s class and message (exit status 0 either way: that is the answer).
 */
public final class NativeProfileCheck {
    private NativeProfileCheck() {}

    /** @param args kit folder, table file, options */
    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: NativeProfileCheck KIT_DIR OUT [--space NAME --size SIZE] [--warmup N]"
                    + " [--repeats N] [--threads N] [--program PTE]");
            System.exit(64);
        }
        OpProfiler.Options options = new OpProfiler.Options().device("desktop (NativeProfileCheck)");
        String name = null;
        String size = null;
        String program = null;
        int threads = 1;
        for (int i = 2; i < args.length; i += 2) {
            String value = args[i + 1];
            switch (args[i]) {
                case "--space":
                    name = value;
                    break;
                case "--size":
                    size = value;
                    break;
                case "--warmup":
                    options.warmup(Integer.parseInt(value));
                    break;
                case "--repeats":
                    options.repeats(Integer.parseInt(value));
                    break;
                case "--threads":
                    threads = Integer.parseInt(value);
                    break;
                case "--program":
                    program = value;
                    break;
                default:
                    throw new IllegalArgumentException("unknown option " + args[i]);
            }
        }
        options.space(name, size);
        JSONObject report = new JSONObject();
        try {
            OpProfiler.Kit kit = OpProfiler.Kit.load(new File(args[0]));
            int running = NativeEngine.setThreads(threads);
            options.threads(running);
            long start = System.nanoTime();
            NativeEngine engine = NativeEngine.load(program != null ? program : kit.programFile().getPath());
            try {
                report.put("load_ms", (System.nanoTime() - start) / 1e6);
                JSONObject table = OpProfiler.profile(kit, engine, new File(args[1]), options);
                report.put("table", args[1]);
                report.put("methods", kit.methods().size());
                report.put("signatures", kit.signatures());
                report.put("threads", running);
                report.put("profiling_s", table.getDouble("profiling_s"));
            } finally {
                engine.close();
            }
        } catch (ProfileException e) {
            report.put("error", e.getClass().getName() + ": " + e.getMessage());
        }
        System.out.println(report.toString());
    }
}
