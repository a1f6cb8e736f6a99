package org.prpnas.bridge;

import java.io.BufferedInputStream;
import java.io.DataInputStream;
import java.io.File;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Test driver for {@link NativeEngine} (not part of the library): runs a program the way the
 * pytest suite asks and prints one JSON object, so the Python side can compare with its runtime.
 *
 * <pre>
 * run     PTE INPUT.f32 N OUT_DIR        every method on N rows; OUT_DIR/METHOD.f32 = logits
 * threads PTE INPUT.f32 N THREADS ROUNDS concurrent runs against single-threaded ones, then a
 *                                        close() while runs are in flight
 * errors  PTE                            the exceptions of misuse, by case
 * open    PATH...                        load each PATH; "ok" or the exception, by path
 * together PATH...                       load every PATH, each kept open; "ok" or the exception
 * open-run INPUT.f32 N OUT_DIR PTE...    load every PTE, all kept open, then run every method of
 *                                        each on N rows: OUT_DIR/K/METHOD.f32 (K: the PTE's
 *                                        position); close the first and run the others again
 * </pre>
 *
 * INPUT.f32 holds N rows of the program's input, float32 little-endian, row-major. With
 * {@code -Dprp.weightCache=off}, XNNPACK's weight cache is turned off before anything loads (it is
 * on by default); {@code run} reports which it was. With {@code -Dprp.residency=active},
 * {@code run} and {@code threads} load the program with {@link NativeEngine.Residency#ACTIVE}.
 */
public final class NativeEngineCheck {
    private NativeEngineCheck() {}

    public static void main(String[] args) throws Exception {
        if (args.length == 0) {
            throw new IllegalArgumentException("usage: run|threads|errors|open ...");
        }
        if ("off".equals(System.getProperty("prp.weightCache"))) {
            NativeEngine.setWeightCache(false);
        }
        Map<String, Object> result;
        switch (args[0]) {
            case "run":
                result = run(args[1], new File(args[2]), Integer.parseInt(args[3]), new File(args[4]));
                break;
            case "threads":
                result = threads(args[1], new File(args[2]), Integer.parseInt(args[3]),
                        Integer.parseInt(args[4]), Integer.parseInt(args[5]));
                break;
            case "errors":
                result = errors(args[1]);
                break;
            case "open":
                result = new LinkedHashMap<String, Object>();
                for (int i = 1; i < args.length; i++) {
                    result.put(args[i], open(args[i]));
                }
                break;
            case "together":
                result = together(Arrays.copyOfRange(args, 1, args.length));
                break;
            case "open-run":
                result = openRun(new File(args[1]), Integer.parseInt(args[2]), new File(args[3]),
                        Arrays.copyOfRange(args, 4, args.length));
                break;
            default:
                throw new IllegalArgumentException("unknown command " + args[0]);
        }
        System.out.println(json(result));
    }

    /** The program loaded with the residency {@code -Dprp.residency} names (default all). */
    private static NativeEngine load(String pte) throws IOException {
        String residency = System.getProperty("prp.residency", "all");
        return NativeEngine.load(pte, NativeEngine.Residency.valueOf(residency.toUpperCase()));
    }

    private static Map<String, Object> run(String pte, File inputFile, int n, File outDir)
            throws IOException {
        Map<String, Object> out = new LinkedHashMap<String, Object>();
        out.put("weight_cache", NativeEngine.weightCache());
        long start = System.nanoTime();
        NativeEngine engine = load(pte);
        out.put("residency", engine.residency().name());
        out.put("load_ms", (System.nanoTime() - start) / 1e6);
        try {
            List<String> methods = new ArrayList<String>(engine.methods());
            long[] shape = engine.inputShape(methods.get(0));
            int row = rowSize(shape);
            float[] input = readFloats(inputFile, n * row);
            out.put("methods", methods);
            out.put("input_shape", toList(shape));
            long[] batchShape = shape.clone();
            batchShape[0] = n;
            boolean batchEqual = true;
            long runNanos = 0;
            int calls = 0;
            for (String method : methods) {
                if (!Arrays.equals(engine.inputShape(method), shape)) {
                    throw new IllegalStateException("methods take different shapes");
                }
                float[] all = null;
                for (int i = 0; i < n; i++) {
                    float[] x = Arrays.copyOfRange(input, i * row, (i + 1) * row);
                    long t = System.nanoTime();
                    float[] logits = engine.run(method, x, shape);
                    runNanos += System.nanoTime() - t;
                    calls++;
                    if (all == null) {
                        all = new float[n * logits.length];
                    }
                    System.arraycopy(logits, 0, all, i * logits.length, logits.length);
                }
                batchEqual &= Arrays.equals(all, engine.run(method, input, batchShape));
                writeFloats(new File(outDir, method + ".f32"), all);
            }
            out.put("batch_equals_rows", batchEqual);
            out.put("calls", calls);
            out.put("mean_run_ms", runNanos / 1e6 / calls);
        } finally {
            engine.close();
        }
        return out;
    }

    private static Map<String, Object> threads(
            String pte, File inputFile, int n, int threadCount, final int rounds)
            throws Exception {
        final NativeEngine engine = load(pte);
        final List<String> methods = new ArrayList<String>(engine.methods());
        final long[] shape = engine.inputShape(methods.get(0));
        final int row = rowSize(shape);
        float[] input = readFloats(inputFile, n * row);
        final float[][] rows = new float[n][];
        for (int i = 0; i < n; i++) {
            rows[i] = Arrays.copyOfRange(input, i * row, (i + 1) * row);
        }
        final Map<String, float[][]> reference = new LinkedHashMap<String, float[][]>();
        for (String method : methods) {
            float[][] logits = new float[n][];
            for (int i = 0; i < n; i++) {
                logits[i] = engine.run(method, rows[i], shape);
            }
            reference.put(method, logits);
        }
        final List<int[]> jobs = new ArrayList<int[]>();
        for (int m = 0; m < methods.size(); m++) {
            for (int i = 0; i < n; i++) {
                jobs.add(new int[] {m, i});
            }
        }

        // Phase 1: every thread runs every (method, row) `rounds` times, each in its own order.
        final AtomicInteger calls = new AtomicInteger();
        final AtomicInteger mismatches = new AtomicInteger();
        final List<String> failures = Collections.synchronizedList(new ArrayList<String>());
        final CountDownLatch go = new CountDownLatch(1);
        List<Thread> workers = new ArrayList<Thread>();
        for (int t = 0; t < threadCount; t++) {
            final long seed = t;
            Thread worker = new Thread(new Runnable() {
                @Override
                public void run() {
                    List<int[]> order = new ArrayList<int[]>(jobs);
                    Random random = new Random(seed);
                    try {
                        go.await();
                        for (int r = 0; r < rounds; r++) {
                            Collections.shuffle(order, random);
                            for (int[] job : order) {
                                String method = methods.get(job[0]);
                                float[] logits = engine.run(method, rows[job[1]], shape);
                                calls.incrementAndGet();
                                if (!Arrays.equals(logits, reference.get(method)[job[1]])) {
                                    mismatches.incrementAndGet();
                                }
                            }
                        }
                    } catch (Throwable e) {
                        failures.add(e.toString());
                    }
                }
            });
            worker.start();
            workers.add(worker);
        }
        long start = System.nanoTime();
        go.countDown();
        for (Thread worker : workers) {
            worker.join();
        }
        double seconds = (System.nanoTime() - start) / 1e9;

        // Phase 2: close() while threads are running; each run either completes correctly or
        // fails with IllegalStateException, nothing else (and no crash).
        final AtomicInteger closedErrors = new AtomicInteger();
        final AtomicInteger afterCloseOk = new AtomicInteger();
        final AtomicLong badAfterClose = new AtomicLong();
        final List<String> closeFailures = Collections.synchronizedList(new ArrayList<String>());
        final CountDownLatch running = new CountDownLatch(threadCount);
        List<Thread> racers = new ArrayList<Thread>();
        for (int t = 0; t < threadCount; t++) {
            final int offset = t;
            Thread racer = new Thread(new Runnable() {
                @Override
                public void run() {
                    int k = offset;
                    boolean counted = false;
                    while (true) {
                        int[] job = jobs.get(k++ % jobs.size());
                        String method = methods.get(job[0]);
                        try {
                            float[] logits = engine.run(method, rows[job[1]], shape);
                            afterCloseOk.incrementAndGet();
                            if (!Arrays.equals(logits, reference.get(method)[job[1]])) {
                                badAfterClose.incrementAndGet();
                            }
                        } catch (IllegalStateException e) {
                            closedErrors.incrementAndGet();
                            break;
                        } catch (Throwable e) {
                            closeFailures.add(e.toString());
                            break;
                        }
                        if (!counted) {
                            running.countDown();
                            counted = true;
                        }
                    }
                    if (!counted) {
                        running.countDown();
                    }
                }
            });
            racer.start();
            racers.add(racer);
        }
        running.await();
        engine.close();
        for (Thread racer : racers) {
            racer.join();
        }

        Map<String, Object> out = new LinkedHashMap<String, Object>();
        out.put("methods", methods);
        out.put("threads", threadCount);
        out.put("calls", calls.get());
        out.put("expected_calls", threadCount * rounds * jobs.size());
        out.put("mismatches", mismatches.get());
        out.put("failures", failures);
        out.put("calls_per_s", calls.get() / seconds);
        out.put("close_race_completed_runs", afterCloseOk.get());
        out.put("close_race_wrong_results", badAfterClose.get());
        out.put("close_race_closed_errors", closedErrors.get());
        out.put("close_race_failures", closeFailures);
        return out;
    }

    private static Map<String, Object> errors(String pte) throws IOException {
        Map<String, Object> out = new LinkedHashMap<String, Object>();
        NativeEngine engine = NativeEngine.load(pte);
        List<String> methods = new ArrayList<String>(engine.methods());
        String method = methods.get(0);
        long[] shape = engine.inputShape(method);
        int row = rowSize(shape);
        out.put("methods", methods);
        out.put("unknown_method", attempt(engine, "path_99", new float[row], shape));
        out.put("null_method", attempt(engine, null, new float[row], shape));
        out.put("wrong_size", attempt(engine, method, new float[row - 1], shape));
        long[] wrongShape = shape.clone();
        wrongShape[wrongShape.length - 1] += 1;
        wrongShape[wrongShape.length - 2] -= 1;
        out.put("wrong_shape", attempt(engine, method, new float[rowSize(wrongShape)], wrongShape));
        long[] flat = new long[] {row};
        out.put("wrong_rank", attempt(engine, method, new float[row], flat));
        out.put("null_input", attempt(engine, method, null, shape));
        out.put("input_shape_unknown", describe(() -> engine.inputShape("nope")));
        out.put("still_runs", attempt(engine, method, new float[row], shape));
        engine.close();
        engine.close();
        out.put("after_close", attempt(engine, method, new float[row], shape));
        out.put("input_shape_after_close", describe(() -> engine.inputShape(method)));
        out.put("methods_after_close", new ArrayList<String>(engine.methods()));
        return out;
    }

    private static String open(String path) {
        try (NativeEngine engine = NativeEngine.load(path)) {
            return "ok " + engine.methods();
        } catch (Exception e) {
            return e.getClass().getName() + ": " + e.getMessage();
        }
    }

    private static Map<String, Object> together(String[] paths) {
        Map<String, Object> out = new LinkedHashMap<String, Object>();
        List<NativeEngine> open = new ArrayList<NativeEngine>();
        List<Object> results = new ArrayList<Object>();
        try {
            for (String path : paths) {
                try {
                    open.add(NativeEngine.load(path));
                    results.add("ok");
                } catch (Exception e) {
                    results.add(e.getClass().getName() + ": " + e.getMessage());
                }
            }
        } finally {
            for (NativeEngine engine : open) {
                engine.close();
            }
        }
        out.put("weight_cache", NativeEngine.weightCache());
        out.put("results", results);
        out.put("after_closing", open(paths[paths.length - 1]));
        return out;
    }

    private static Map<String, Object> openRun(File inputFile, int n, File outDir, String[] ptes)
            throws IOException {
        Map<String, Object> out = new LinkedHashMap<String, Object>();
        out.put("weight_cache", NativeEngine.weightCache());
        List<NativeEngine> open = new ArrayList<NativeEngine>();
        try {
            for (String pte : ptes) {
                open.add(NativeEngine.load(pte));
            }
            float[] input = null;
            List<Object> methods = new ArrayList<Object>();
            List<Map<String, float[]>> first = new ArrayList<Map<String, float[]>>();
            for (int k = 0; k < open.size(); k++) {
                NativeEngine engine = open.get(k);
                List<String> names = new ArrayList<String>(engine.methods());
                long[] shape = engine.inputShape(names.get(0));
                if (input == null) {
                    input = readFloats(inputFile, n * rowSize(shape));
                }
                File dir = new File(outDir, String.valueOf(k));
                if (!dir.isDirectory() && !dir.mkdirs()) {
                    throw new IOException("cannot make " + dir);
                }
                Map<String, float[]> logits = runAll(engine, input, n);
                for (Map.Entry<String, float[]> e : logits.entrySet()) {
                    writeFloats(new File(dir, e.getKey() + ".f32"), e.getValue());
                }
                methods.add(names);
                first.add(logits);
            }
            open.remove(0).close();
            boolean same = true;
            for (int k = 0; k < open.size(); k++) {
                Map<String, float[]> again = runAll(open.get(k), input, n);
                for (Map.Entry<String, float[]> e : again.entrySet()) {
                    same &= Arrays.equals(e.getValue(), first.get(k + 1).get(e.getKey()));
                }
            }
            out.put("methods", methods);
            out.put("same_after_closing_first", same);
        } finally {
            for (NativeEngine engine : open) {
                engine.close();
            }
        }
        return out;
    }

    /** Every method of `engine` on the n rows of `input` (one batch call each), by method. */
    private static Map<String, float[]> runAll(NativeEngine engine, float[] input, int n) {
        Map<String, float[]> out = new LinkedHashMap<String, float[]>();
        for (String method : engine.methods()) {
            long[] shape = engine.inputShape(method).clone();
            shape[0] = n;
            out.put(method, engine.run(method, input, shape));
        }
        return out;
    }

    private interface Call {
        Object call();
    }

    private static String attempt(NativeEngine engine, String method, float[] input, long[] shape) {
        return describe(() -> engine.run(method, input, shape));
    }

    private static String describe(Call call) {
        try {
            Object value = call.call();
            return "ok " + (value instanceof float[] ? ((float[]) value).length + " values" : "");
        } catch (RuntimeException e) {
            return e.getClass().getName() + ": " + e.getMessage();
        }
    }

    // ---------------------------------------------------------------------------- helpers

    private static int rowSize(long[] shape) {
        long size = 1;
        for (int i = 1; i < shape.length; i++) {
            size *= shape[i];
        }
        return (int) size;
    }

    private static List<Long> toList(long[] values) {
        List<Long> out = new ArrayList<Long>();
        for (long v : values) {
            out.add(v);
        }
        return out;
    }

    private static float[] readFloats(File file, int count) throws IOException {
        if (file.length() != 4L * count) {
            throw new IOException(file + " holds " + file.length() + " bytes; expected " + 4L * count);
        }
        byte[] bytes = new byte[4 * count];
        try (InputStream in = new DataInputStream(new BufferedInputStream(new FileInputStream(file)))) {
            ((DataInputStream) in).readFully(bytes);
        }
        float[] values = new float[count];
        ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(values);
        return values;
    }

    private static void writeFloats(File file, float[] values) throws IOException {
        ByteBuffer buffer = ByteBuffer.allocate(4 * values.length).order(ByteOrder.LITTLE_ENDIAN);
        buffer.asFloatBuffer().put(values);
        try (OutputStream out = new FileOutputStream(file)) {
            out.write(buffer.array());
        }
    }

    private static String json(Object value) {
        if (value == null) {
            return "null";
        }
        if (value instanceof Map) {
            StringBuilder out = new StringBuilder("{");
            for (Map.Entry<?, ?> e : ((Map<?, ?>) value).entrySet()) {
                out.append(out.length() > 1 ? ", " : "").append(json(String.valueOf(e.getKey())));
                out.append(": ").append(json(e.getValue()));
            }
            return out.append("}").toString();
        }
        if (value instanceof List) {
            StringBuilder out = new StringBuilder("[");
            for (Object item : (List<?>) value) {
                out.append(out.length() > 1 ? ", " : "").append(json(item));
            }
            return out.append("]").toString();
        }
        if (value instanceof Number || value instanceof Boolean) {
            return String.valueOf(value);
        }
        StringBuilder out = new StringBuilder("\"");
        for (char c : value.toString().toCharArray()) {
            if (c == '"' || c == '\\') {
                out.append('\\').append(c);
            } else if (c < 0x20) {
                out.append(String.format("\\u%04x", (int) c));
            } else {
                out.append(c);
            }
        }
        return out.append('"').toString();
    }
}
