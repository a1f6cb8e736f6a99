package org.prpnas.bridge;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import org.junit.Test;

/** Image preprocessing and input checks (the pytest suite compares them with numpy bit for bit). */
public class InputSpecTest {
    @Test
    public void nhwcBytesBecomeNormalisedNchw() throws Exception {
        InputSpec in = Bundles.shippedManifest().input();
        int hw = 32 * 32;
        byte[] pixels = new byte[2 * hw * 3];
        pixels[0] = (byte) 255; // image 0, (0, 0), R
        pixels[3 * 33 + 2] = (byte) 128; // image 0, (1, 1), B
        pixels[hw * 3 + 1] = 7; // image 1, (0, 0), G
        float[] x = in.fromImagesNhwc(pixels, 2);
        assertEquals(2 * 3 * hw, x.length);
        float[] mean = in.mean();
        float[] std = in.std();
        assertEquals((1.0f - mean[0]) / std[0], x[0], 0f);
        assertEquals(((float) 128 / 255.0f - mean[2]) / std[2], x[2 * hw + 33], 0f);
        assertEquals(((float) 7 / 255.0f - mean[1]) / std[1], x[3 * hw + hw], 0f);
        assertEquals((0f - mean[1]) / std[1], x[hw], 0f);

        int[] argb = new int[2 * hw];
        for (int n = 0; n < 2; n++) {
            for (int i = 0; i < hw; i++) {
                int o = (n * hw + i) * 3;
                argb[n * hw + i] = 0xff000000 | (pixels[o] & 0xff) << 16 | (pixels[o + 1] & 0xff) << 8
                        | (pixels[o + 2] & 0xff);
            }
        }
        assertArrayEquals(x, in.fromArgbPixels(argb, 2), 0f);
    }

    @Test
    public void wrongInputIsExplained() throws Exception {
        InputSpec in = Bundles.shippedManifest().input();
        assertTrue(assertThrows(InputException.class, () -> in.fromImagesNhwc(new byte[10], 1)).getMessage()
                .contains("8-bit images must be (N, 32, 32, 3) = 3072 bytes"));
        assertTrue(assertThrows(InputException.class, () -> in.fromArgbPixels(new int[10], 1)).getMessage()
                .contains("scale the bitmap to 32 x 32"));
        assertTrue(assertThrows(InputException.class, () -> in.checkFloat(new float[3072], new long[] {1, 32, 32, 3}))
                .getMessage().contains("float input must be (N, 3, 32, 32)"));
        assertTrue(assertThrows(InputException.class, () -> in.checkFloat(new float[5], new long[] {1, 3, 32, 32}))
                .getMessage().contains("needs 3072 values, got 5"));
        float[] nan = new float[3072];
        nan[9] = Float.NaN;
        assertTrue(assertThrows(InputException.class, () -> in.checkFloat(nan, new long[] {1, 3, 32, 32}))
                .getMessage().contains("NaN"));
        assertArrayEquals(new long[] {1, 3, 32, 32}, in.checkFloat(new float[3072], new long[] {3, 32, 32}));
    }
}
