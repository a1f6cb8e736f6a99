package org.prpnas.bridge;

import java.io.File;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;

/**
 * Command line: normalises 8-bit NHWC images with {@link InputSpec#fromImagesNhwc} and writes the
 * floats (little-endian float32), so a test can compare them with {@code AdaptiveModel.prepare}.
 *
 * <pre>
 * java -cp ... org.prpnas.bridge.PrepareDump BUNDLE_DIR IMAGES.u8 COUNT OUT.f32
 * </pre>
 */
public final class PrepareDump {
    private PrepareDump() {}

    /** @param args bundle folder, raw image bytes, image count, output file */
    public static void main(String[] args) throws Exception {
        Manifest manifest = Manifest.load(new File(args[0]), false);
        byte[] pixels = Files.readAllBytes(new File(args[1]).toPath());
        float[] x = manifest.input().fromImagesNhwc(pixels, Integer.parseInt(args[2]));
        ByteBuffer out = ByteBuffer.allocate(4 * x.length).order(ByteOrder.LITTLE_ENDIAN);
        out.asFloatBuffer().put(x);
        Files.write(new File(args[3]).toPath(), out.array());
        System.out.println("wrote " + x.length + " floats");
    }
}
