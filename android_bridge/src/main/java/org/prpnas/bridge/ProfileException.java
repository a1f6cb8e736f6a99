package org.prpnas.bridge;

/**
 * A profile kit that is missing, damaged, of an unknown version or of another space, a program
 * that is not the kit's, or a table file {@link OpProfiler} may not overwrite.
 *
 * <p>The message names the file or field and says what to do (usually: build the kit again with
 * {@code prp-profile --space S --kit DIR} and copy the whole folder to the device).
 */
public class ProfileException extends Exception {
    private static final long serialVersionUID = 1L;

    /** @param message what is wrong, with the value, and what to do about it */
    public ProfileException(String message) {
        super(message);
    }

    /**
     * @param message what is wrong and what to do about it
     * @param cause the underlying failure (an I/O error, a JSON syntax error)
     */
    public ProfileException(String message, Throwable cause) {
        super(message, cause);
    }
}
