package org.prpnas.bridge;

import java.math.BigDecimal;
import java.util.Locale;

/** Number formatting for reasons and messages, locale-independent (a phone may use "," decimals). */
final class Fmt {
    private Fmt() {}

    /** {@code value} with one decimal, like Python's {@code f"{value:.1f}"}. */
    static String one(double value) {
        return String.format(Locale.ROOT, "%.1f", value);
    }

    /** {@code value} with two decimals. */
    static String two(double value) {
        return String.format(Locale.ROOT, "%.2f", value);
    }

    /** Shortest plain form without trailing zeros, like Python's {@code f"{value:g}"} for thresholds. */
    static String g(double value) {
        if (Double.isNaN(value) || Double.isInfinite(value)) {
            return Double.toString(value);
        }
        String s = new BigDecimal(Double.toString(value)).stripTrailingZeros().toPlainString();
        return s.equals("-0") ? "0" : s;
    }
}
