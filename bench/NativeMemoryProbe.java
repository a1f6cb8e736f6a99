import java.io.BufferedReader;
import java.io.FileReader;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import org.prpnas.bridge.NativeEngine;

/**
 * What loading programs through the JNI engine adds to a fresh JVM's resident memory (bench/
 * weight_cache.py compiles and runs it): args PTE[,PTE...] CACHE(on|off) C H W. Loads each
 * program in turn, all kept open, and runs every method of each once; prints one JSON line.
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
        boolean now = NativeEngine.setWeightCache(cache); // loads the library first
        System.gc();
        long rss0 = statusKb("VmRSS");
        long anon0 = statusKb("RssAnon");
        List<NativeEngine> engines = new ArrayList<NativeEngine>();
        for (String pte : args[0].split(",")) {
            NativeEngine engine = NativeEngine.load(pte);
            engines.add(engine);
            for (String method : engine.methods()) {
                engine.run(method, input, shape);
            }
        }
        System.gc();
        long rss1 = statusKb("VmRSS");
        long anon1 = statusKb("RssAnon");
        System.out.println("{\"weight_cache\": " + now + ", \"rss_mib\": " + (rss1 - rss0) / 1024.0
                + ", \"anon_mib\": " + (anon1 - anon0) / 1024.0 + "}");
        for (NativeEngine engine : engines) {
            engine.close();
        }
    }
}
