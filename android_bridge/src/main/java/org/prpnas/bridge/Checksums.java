package org.prpnas.bridge;

import java.io.File;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;

/** sha256 of bundle files, as the manifest's {@code files} table records them (lowercase hex). */
public final class Checksums {
    private static final char[] HEX = "0123456789abcdef".toCharArray();

    private Checksums() {}

    /**
     * @param file a readable regular file
     * @return its sha256 as 64 lowercase hex digits
     * @throws IOException if the file cannot be read, or is a folder, FIFO or device (refused before
     *     opening, so a FIFO cannot block the caller)
     */
    public static String sha256(File file) throws IOException {
        if (file.exists() && !file.isFile()) {
            throw new IOException(file + " is not a regular file");
        }
        MessageDigest digest;
        try {
            digest = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("this Java runtime has no SHA-256, which every Java runtime must have",
                    e);
        }
        byte[] buffer = new byte[1 << 16];
        InputStream in = new FileInputStream(file);
        try {
            for (int n = in.read(buffer); n >= 0; n = in.read(buffer)) {
                digest.update(buffer, 0, n);
            }
        } finally {
            in.close();
        }
        byte[] hash = digest.digest();
        char[] out = new char[hash.length * 2];
        for (int i = 0; i < hash.length; i++) {
            out[2 * i] = HEX[(hash[i] >> 4) & 0xF];
            out[2 * i + 1] = HEX[hash[i] & 0xF];
        }
        return new String(out);
    }
}
