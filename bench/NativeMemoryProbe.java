import java.io.BufferedReader;
import java.io.FileReader;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import org.prpnas.bridge.NativeEngine;

/**
 * What loading programs through the JNI engine adds to a fresh JVM's resident memory (bench/
 * weight_cache.py compiles and runs it): args PTE[,PTE...] CACHE(on|off) C H W [RESIDENCY]. Loads
 * each program in turn (with RESIDENCY all, the default, or active), all kept open, and runs every
 * method of each twice; prints one JSON line: the most memory added after any method's runs (with
 * residency active, while the method holding the most is the one loaded), that at the end, its
 * peak, and the mean time a method's first run took beyond its second (with residency active,
 * the switch's load).
 */
public final class NativeMemoryProbe {
    private static long statusKb(String field) throws IOException {
        try (BufferedReader r = new BufferedReader(new FileReader("/proc/self/status"))) {
            for (String line = r.readLine(); line != null; line = r.readLine()) {
                if (line.startsWith(field + ":")) {
                    return Long.parseLong(line.replaceAll("[^0-9]", ""));
                }
            }
        }
        throw new IOException("no " + field + " in /proc/self/status");
    }

    public static void main(String[] args) throws Exception {
        boolean cache = args[1].equals("on");
        long[] shape = {1, Long.parseLong(args[2]), Long.parseLong(args[3]), Long.parseLong(args[4])};
        float[] input = new float[(int) (shape[1] * shape[2] * shape[3])];
        NativeEngine.Residency residency =
                NativeEngine.Residency.valueOf(args.length > 5 ? args[5].toUpperCase() : "ALL");
        boolean now = NativeEngine.setWeightCache(cache); // loads the library first
        System.gc();
        long rss0 = statusKb("VmRSS");
        long anon0 = statusKb("RssAnon");
        List<NativeEngine> engines = new ArrayList<NativeEngine>();
        long extraNanos = 0;
        int methods = 0;
        long most = 0;
        for (String pte : args[0].split(",")) {
            NativeEngine engine = NativeEngine.load(pte, residency);
            engines.add(engine);
            for (String method : engine.methods()) {
                long t0 = System.nanoTime();
                engine.run(method, input, shape);
                long t1 = System.nanoTime();
                engine.run(method, input, shape);
                extraNanos += (t1 - t0) - (System.nanoTime() - t1);
                methods++;
                most = Math.max(most, statusKb("VmRSS"));
            }
        }
        System.gc();
        long rss1 = statusKb("VmRSS");
        most = Math.max(most, rss1);
        long anon1 = statusKb("RssAnon");
        long peak = statusKb("VmHWM");
        System.out.println("{\"weight_cache\": " + now + ", \"residency\": \"" + residency.name()
                + "\", \"rss_mib\": " + (most - rss0) / 1024.0
                + ", \"rss_end_mib\": " + (rss1 - rss0) / 1024.0
                + ", \"anon_mib\": " + (anon1 - anon0) / 1024.0
                + ", \"peak_mib\": " + (peak - rss0) / 1024.0
                + ", \"first_run_extra_ms\": " + extraNanos / 1e6 / methods + "}");
        for (NativeEngine engine : engines) {
            engine.close();
        }
    }
}
