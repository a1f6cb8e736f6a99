package org.prpnas.bridge;

import java.util.List;

/** The logits of one call, the one path that produced every row, and why. Immutable. */
public final class Prediction {
    private final float[] logits;
    private final int batch;
    private final List<String> classes;
    private final String path;
    private final String reason;

    Prediction(float[] logits, int batch, List<String> classes, String path, String reason) {
        this.logits = logits;
        this.batch = batch;
        this.classes = classes;
        this.path = path;
        this.reason = reason;
    }

    /** Logits, row-major {@code batch x classes} (a copy). */
    public float[] logits() {
        return logits.clone();
    }

    /** The logit of {@code row}, {@code classIndex}. */
    public float logit(int row, int classIndex) {
        return logits[row * classes.size() + classIndex];
    }

    /** Number of rows (images). */
    public int batch() {
        return batch;
    }

    /** The path that ran. */
    public String path() {
        return path;
    }

    /** Why that path. */
    public String reason() {
        return reason;
    }

    /** The highest-scoring class of every row (the first on ties, like numpy's argmax). */
    public int[] labels() {
        int k = classes.size();
        int[] out = new int[batch];
        for (int r = 0; r < batch; r++) {
            int best = 0;
            for (int c = 1; c < k; c++) {
                if (logits[r * k + c] > logits[r * k + best]) {
                    best = c;
                }
            }
            out[r] = best;
        }
        return out;
    }

    /** The class name of every row's label. */
    public String[] labelNames() {
        int[] labels = labels();
        String[] out = new String[labels.length];
        for (int i = 0; i < labels.length; i++) {
            out[i] = classes.get(labels[i]);
        }
        return out;
    }
}
