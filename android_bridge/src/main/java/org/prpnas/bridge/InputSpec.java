package org.prpnas.bridge;

import java.util.Arrays;
import org.json.JSONArray;
import org.json.JSONObject;

/**
 * What the program takes (the manifest's {@code input}): float32 NCHW of shape {@code (N, C, H, W)},
 * normalised as {@code (pixel / 255 - mean[c]) / std[c]}. Also turns images into that form, with the
 * same float32 arithmetic as {@code prp.runtime.AdaptiveModel.prepare}, so both give identical
 * tensors.
 */
public final class InputSpec {
    private final int channels;
    private final int height;
    private final int width;
    private final int programBatch;
    private final float[] mean;
    private final float[] std;

    private InputSpec(int channels, int height, int width, int programBatch, float[] mean, float[] std) {
        this.channels = channels;
        this.height = height;
        this.width = width;
        this.programBatch = programBatch;
        this.mean = mean;
        this.std = std;
    }

    /** Reads a validated manifest's {@code input} object; throws if it is not an NCHW image input. */
    static InputSpec fromJson(JSONObject input, String where) throws BundleException {
        JSONArray shape = input.optJSONArray("shape");
        int[] dims = new int[4];
        boolean ok = shape.length() == 4;
        for (int i = 0; ok && i < 4; i++) {
            Object d = shape.opt(i);
            ok = d instanceof Integer && (Integer) d > 0;
            dims[i] = ok ? (Integer) d : 0;
        }
        if (!ok) {
            throw new BundleException(where + ": input.shape " + shape + " is not (N, C, H, W) with positive "
                    + "sizes; this bridge runs image programs only");
        }
        float[] m = floats(input.optJSONArray("mean"));
        float[] s = floats(input.optJSONArray("std"));
        if (m == null || s == null || m.length != dims[1] || s.length != dims[1]) {
            throw new BundleException(where + ": input.mean and input.std must hold one number per channel ("
                    + dims[1] + "), got " + input.opt("mean") + " and " + input.opt("std"));
        }
        int batch = dims[0];
        JSONObject batches = input.optJSONObject("batch");
        if (batches != null && batches.opt("executorch") instanceof Integer) {
            batch = (Integer) batches.opt("executorch");
        }
        return new InputSpec(dims[1], dims[2], dims[3], batch, m, s);
    }

    /** float32 like numpy's {@code np.asarray(values, dtype=np.float32)}; null if not all numbers. */
    private static float[] floats(JSONArray values) {
        float[] out = new float[values.length()];
        for (int i = 0; i < out.length; i++) {
            Object v = values.opt(i);
            if (!(v instanceof Number)) {
                return null;
            }
            out[i] = (float) ((Number) v).doubleValue();
        }
        return out;
    }

    /** Channels C. */
    public int channels() {
        return channels;
    }

    /** Height H in pixels. */
    public int height() {
        return height;
    }

    /** Width W in pixels. */
    public int width() {
        return width;
    }

    /** The batch size the program was exported for ({@code input.batch.executorch}, else shape[0]). */
    public int programBatch() {
        return programBatch;
    }

    /** Per-channel mean (a copy). */
    public float[] mean() {
        return mean.clone();
    }

    /** Per-channel standard deviation (a copy). */
    public float[] std() {
        return std.clone();
    }

    /** Values in one image, {@code C * H * W}. */
    public int imageSize() {
        return channels * height * width;
    }

    /** The shape of a batch of {@code count} images: {@code {count, C, H, W}}. */
    public long[] batchShape(int count) {
        return new long[] {count, channels, height, width};
    }

    /**
     * Checks float input the way {@code AdaptiveModel.prepare} does.
     *
     * @param values normalised values, row-major
     * @param shape {@code (N, C, H, W)}, or {@code (C, H, W)} for one image
     * @return the 4-D shape
     * @throws InputException naming what was given and what was expected
     */
    public long[] checkFloat(float[] values, long[] shape) {
        if (values == null || shape == null) {
            throw new InputException("input values and shape must not be null");
        }
        long[] s = shape.length == 3 ? new long[] {1, shape[0], shape[1], shape[2]} : shape;
        if (s.length != 4 || s[0] < 1 || s[1] != channels || s[2] != height || s[3] != width) {
            throw new InputException("float input must be (N, " + channels + ", " + height + ", " + width
                    + ") normalised NCHW, got shape " + Arrays.toString(shape)
                    + "; for 8-bit images use fromImagesNhwc or fromArgbPixels");
        }
        long expected = s[0] * (long) imageSize();
        if (values.length != expected) {
            throw new InputException("input shape " + Arrays.toString(shape) + " needs " + expected
                    + " values, got " + values.length);
        }
        for (float v : values) {
            if (Float.isNaN(v) || Float.isInfinite(v)) {
                throw new InputException("input contains NaN or infinite values");
            }
        }
        return s;
    }

    /**
     * Normalised NCHW floats from 8-bit RGB images stored NHWC (as numpy's {@code (N, H, W, 3)} uint8).
     *
     * @param pixels {@code count * H * W * C} bytes, read as unsigned
     * @param count number of images
     * @return {@code count * C * H * W} floats for {@link SupernetRuntime#predict}
     */
    public float[] fromImagesNhwc(byte[] pixels, int count) {
        long expected = (long) count * imageSize();
        if (count < 1 || pixels == null || pixels.length != expected) {
            throw new InputException("8-bit images must be (N, " + height + ", " + width + ", " + channels
                    + ") = " + expected + " bytes for N = " + count + ", got "
                    + (pixels == null ? "null" : pixels.length + " bytes"));
        }
        float[] out = new float[pixels.length];
        int plane = height * width;
        for (int n = 0; n < count; n++) {
            for (int y = 0; y < height; y++) {
                for (int x = 0; x < width; x++) {
                    int src = ((n * height + y) * width + x) * channels;
                    for (int c = 0; c < channels; c++) {
                        out[(n * channels + c) * plane + y * width + x] = normalise(pixels[src + c] & 0xFF, c);
                    }
                }
            }
        }
        return out;
    }

    /**
     * Normalised NCHW floats from packed ARGB pixels (what Android's {@code Bitmap.getPixels} gives),
     * already scaled to H x W; alpha is ignored. Needs a 3-channel (RGB) input.
     *
     * @param argb {@code count * H * W} pixels, row by row, image after image
     * @param count number of images
     */
    public float[] fromArgbPixels(int[] argb, int count) {
        if (channels != 3) {
            throw new InputException("ARGB pixels give 3 channels; this bundle's input has " + channels);
        }
        int plane = height * width;
        if (count < 1 || argb == null || argb.length != (long) count * plane) {
            throw new InputException("ARGB input must be " + count + " x " + height + " x " + width + " = "
                    + ((long) count * plane) + " pixels, got " + (argb == null ? "null" : argb.length)
                    + "; scale the bitmap to " + width + " x " + height + " first");
        }
        float[] out = new float[count * 3 * plane];
        for (int n = 0; n < count; n++) {
            for (int i = 0; i < plane; i++) {
                int p = argb[n * plane + i];
                int base = n * 3 * plane + i;
                out[base] = normalise((p >> 16) & 0xFF, 0);
                out[base + plane] = normalise((p >> 8) & 0xFF, 1);
                out[base + 2 * plane] = normalise(p & 0xFF, 2);
            }
        }
        return out;
    }

    /** float32 throughout, in numpy's order: {@code (v / 255 - mean) / std}. */
    private float normalise(int value, int channel) {
        float x = (float) value / 255.0f;
        return (x - mean[channel]) / std[channel];
    }
}
