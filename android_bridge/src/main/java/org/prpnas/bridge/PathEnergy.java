package org.prpnas.bridge;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Energy attributed to paths from windows of battery readings (Python:
 * {@code prp.runtime.measuring.Recorder} and {@code attribute_energy}, the same model and fit).
 *
 * <p>The meter is read at most every {@code sampleS} seconds, on a call or a {@link #tick()}; every
 * {@code windowS} seconds of readings closes a window: the energy the battery gave over it, its
 * length, and the images each path ran in it. The last {@code maxWindows} windows are kept.
 * {@link #attribute()} fits, by least squares over the windows,
 *
 * <pre>energy_w = baseline W x seconds_w + sum over paths p of energy_p x images_w,p</pre>
 *
 * so {@code energy_p} is what one image of path p adds to what the phone draws anyway, with a 95 %
 * interval from the fit's standard errors. A phone's battery gauge updates slowly (seconds; the
 * energy counter in steps of its resolution), so windows should be long: 10 s by default.
 * Thread-safe.
 */
public final class PathEnergy {
    /** Per-path energy from the windows' regression. */
    public static final class Attribution {
        /** Per path: mJ per image above the baseline, and the half-width of its 95 % interval. */
        public final Map<String, Double> energyMj, ci95Mj;
        /** The phone's draw besides inference, W; R^2 of the fit; windows it is over. */
        public final double baselineW, r2;
        public final int windows;

        Attribution(Map<String, Double> energyMj, Map<String, Double> ci95Mj, double baselineW, double r2,
                int windows) {
            this.energyMj = Collections.unmodifiableMap(energyMj);
            this.ci95Mj = Collections.unmodifiableMap(ci95Mj);
            this.baselineW = baselineW;
            this.r2 = r2;
            this.windows = windows;
        }

        /** Every path's estimate is positive and its interval at most {@code maxRelative} of it. */
        public boolean confident(double maxRelative) {
            for (Map.Entry<String, Double> e : energyMj.entrySet()) {
                if (!(e.getValue() > 0 && ci95Mj.get(e.getKey()) <= maxRelative * e.getValue())) {
                    return false;
                }
            }
            return true;
        }
    }

    private static final double Z95 = 1.96;

    private final List<String> ids;
    private final BatteryEnergyMeter meter;
    private final Clock clock;
    private final double windowS, sampleS;
    private final int maxWindows;
    private final ArrayDeque<double[]> windows = new ArrayDeque<double[]>(); // {seconds, joules, images...}
    private long[] images;
    private double startS = Double.NaN;
    private double startJ;
    private double nextSampleS;

    /**
     * @param ids the bundle's path ids
     * @param meter the battery's running total
     * @param clock the clock windows are timed on (the meter's own, normally)
     * @param windowS seconds of readings per window (> 0)
     * @param sampleS least seconds between two meter reads (> 0)
     * @param maxWindows windows kept (>= 1)
     */
    public PathEnergy(List<String> ids, BatteryEnergyMeter meter, Clock clock, double windowS, double sampleS,
            int maxWindows) {
        if (meter == null || clock == null || !(windowS > 0) || !(sampleS > 0) || maxWindows < 1) {
            throw new IllegalArgumentException("PathEnergy needs a meter, a clock, windowS > 0, sampleS > 0 and "
                    + "maxWindows >= 1; got " + windowS + ", " + sampleS + ", " + maxWindows);
        }
        this.ids = Collections.unmodifiableList(new ArrayList<String>(ids));
        this.meter = meter;
        this.clock = clock;
        this.windowS = windowS;
        this.sampleS = sampleS;
        this.maxWindows = maxWindows;
        this.images = new long[ids.size()];
        synchronized (this) {
            startWindow(nowS());
        }
    }

    /** Windows of 10 s read at most once a second, the last 1024 kept. */
    public PathEnergy(List<String> ids, BatteryEnergyMeter meter, Clock clock) {
        this(ids, meter, clock, 10.0, 1.0, 1024);
    }

    private double nowS() {
        return clock.nowH() * 3600.0;
    }

    /** {@code images} images of {@code path} ran just now. */
    public synchronized void record(String path, int images) {
        int k = ids.indexOf(path);
        if (k < 0) {
            throw new IllegalArgumentException("no path '" + path + "' is measured; paths are " + ids);
        }
        this.images[k] += images;
        tickLocked();
    }

    /** Reads the meter if a reading is due (between calls: idle time counts too). */
    public synchronized void tick() {
        tickLocked();
    }

    private void tickLocked() {
        double now = nowS();
        if (now < nextSampleS) {
            return;
        }
        nextSampleS = now + sampleS;
        Double joules = meter.readJoules();
        if (joules == null || Double.isNaN(startS)) { // no reading at one end: the window is lost
            startWindow(now);
            return;
        }
        if (now - startS < windowS) {
            return;
        }
        double[] w = new double[2 + ids.size()];
        w[0] = now - startS;
        w[1] = joules - startJ;
        for (int k = 0; k < ids.size(); k++) {
            w[2 + k] = images[k];
        }
        windows.addLast(w);
        if (windows.size() > maxWindows) {
            windows.removeFirst();
        }
        startS = now;
        startJ = joules;
        images = new long[ids.size()];
    }

    private void startWindow(double now) {
        Double joules = meter.readJoules();
        startS = joules == null ? Double.NaN : now;
        startJ = joules == null ? 0.0 : joules;
        images = new long[ids.size()];
        nextSampleS = now + sampleS;
    }

    /** The windows closed so far. */
    public synchronized int windows() {
        return windows.size();
    }

    /**
     * The regression over the kept windows, or {@code null} where the windows cannot separate the
     * paths: a path that never ran, fewer windows than unknowns + 2, or images that rise and fall with
     * the window length alike (one path at a steady pace all along, say).
     */
    public Attribution attribute() {
        List<double[]> rows;
        synchronized (this) {
            rows = new ArrayList<double[]>(windows);
        }
        int n = rows.size();
        int k = 1 + ids.size();
        if (n < k + 2) {
            return null;
        }
        double[][] x = new double[n][k];
        double[] y = new double[n];
        double[] scale = new double[k];
        for (int i = 0; i < n; i++) {
            double[] w = rows.get(i);
            x[i][0] = w[0];
            y[i] = w[1];
            for (int j = 1; j < k; j++) {
                x[i][j] = w[1 + j];
            }
            for (int j = 0; j < k; j++) {
                scale[j] = Math.max(scale[j], Math.abs(x[i][j]));
            }
        }
        for (int j = 0; j < k; j++) {
            if (scale[j] == 0) {
                return null; // a path that never ran
            }
        }
        double[][] xtx = new double[k][k];
        double[] xty = new double[k];
        for (int i = 0; i < n; i++) {
            for (int a = 0; a < k; a++) {
                double xa = x[i][a] / scale[a];
                xty[a] += xa * y[i];
                for (int b = 0; b < k; b++) {
                    xtx[a][b] += xa * x[i][b] / scale[b];
                }
            }
        }
        double[][] inverse = invert(xtx);
        if (inverse == null) {
            return null;
        }
        double[] coef = new double[k];
        for (int a = 0; a < k; a++) {
            for (int b = 0; b < k; b++) {
                coef[a] += inverse[a][b] * xty[b];
            }
        }
        double rss = 0, mean = 0, total = 0;
        for (int i = 0; i < n; i++) {
            mean += y[i] / n;
        }
        for (int i = 0; i < n; i++) {
            double fit = 0;
            for (int j = 0; j < k; j++) {
                fit += x[i][j] / scale[j] * coef[j];
            }
            rss += (y[i] - fit) * (y[i] - fit);
            total += (y[i] - mean) * (y[i] - mean);
        }
        double sigma2 = rss / (n - k);
        Map<String, Double> energy = new LinkedHashMap<String, Double>();
        Map<String, Double> ci = new LinkedHashMap<String, Double>();
        for (int j = 1; j < k; j++) {
            double se = Math.sqrt(Math.max(sigma2 * inverse[j][j], 0.0)) / scale[j];
            energy.put(ids.get(j - 1), coef[j] / scale[j] * 1e3);
            ci.put(ids.get(j - 1), Z95 * se * 1e3);
        }
        double r2 = total > 0 ? 1.0 - rss / total : Double.NaN;
        return new Attribution(energy, ci, coef[0] / scale[0], r2, n);
    }

    /** The inverse of a symmetric matrix by Gauss-Jordan with partial pivoting; null if singular. */
    private static double[][] invert(double[][] m) {
        int k = m.length;
        double[][] a = new double[k][2 * k];
        double largest = 0;
        for (int i = 0; i < k; i++) {
            System.arraycopy(m[i], 0, a[i], 0, k);
            a[i][k + i] = 1.0;
            for (int j = 0; j < k; j++) {
                largest = Math.max(largest, Math.abs(m[i][j]));
            }
        }
        for (int col = 0; col < k; col++) {
            int pivot = col;
            for (int r = col + 1; r < k; r++) {
                if (Math.abs(a[r][col]) > Math.abs(a[pivot][col])) {
                    pivot = r;
                }
            }
            if (Math.abs(a[pivot][col]) <= 1e-12 * largest) {
                return null; // rank deficient: the windows cannot separate the unknowns
            }
            double[] swap = a[col];
            a[col] = a[pivot];
            a[pivot] = swap;
            double p = a[col][col];
            for (int j = 0; j < 2 * k; j++) {
                a[col][j] /= p;
            }
            for (int r = 0; r < k; r++) {
                if (r != col && a[r][col] != 0) {
                    double f = a[r][col];
                    for (int j = 0; j < 2 * k; j++) {
                        a[r][j] -= f * a[col][j];
                    }
                }
            }
        }
        double[][] out = new double[k][k];
        for (int i = 0; i < k; i++) {
            System.arraycopy(a[i], k, out[i], 0, k);
        }
        return out;
    }
}
