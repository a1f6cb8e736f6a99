package org.prpnas.bridge;

/**
 * A bundle that is missing, damaged, of an unknown version, or that disagrees with its program.
 *
 * <p>The message names the file or field and says what to do (usually: export the bundle again
 * with {@code prp-export}, or copy the whole bundle folder again).
 */
public class BundleException extends Exception {
    private static final long serialVersionUID = 1L;

    /** @param message what is wrong, with the value, and what to do about it */
    public BundleException(String message) {
        super(message);
    }

    /**
     * @param message what is wrong and what to do about it
     * @param cause the underlying failure (an I/O error, a JSON syntax error)
     */
    public BundleException(String message, Throwable cause) {
        super(message, cause);
    }
}
