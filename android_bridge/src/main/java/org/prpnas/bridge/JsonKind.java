package org.prpnas.bridge;

import org.json.JSONArray;
import org.json.JSONObject;

/** The JSON value kinds the manifest schema distinguishes, as Python's {@code json} reads them. */
enum JsonKind {
    /** A whole number written without a point or exponent ({@code int} in Python). */
    INT("integer"),
    /** Any number ({@code int} or {@code float}). */
    NUMBER("number"),
    /** A number or {@code null}. */
    NUMBER_OR_NULL("number or null"),
    STRING("string"),
    OBJECT("object"),
    ARRAY("array");

    private final String label;

    JsonKind(String label) {
        this.label = label;
    }

    /** How an error message names this kind. */
    String label() {
        return label;
    }

    /** Whether {@code value} (as org.json parsed it) is of this kind. */
    boolean accepts(Object value) {
        switch (this) {
            case INT:
                return isWhole(value);
            case NUMBER:
                return isNumber(value);
            case NUMBER_OR_NULL:
                return isNumber(value) || value == JSONObject.NULL;
            case STRING:
                return value instanceof String;
            case OBJECT:
                return value instanceof JSONObject;
            case ARRAY:
                return value instanceof JSONArray;
            default:
                throw new AssertionError(this);
        }
    }

    /** A number org.json read from a literal without point or exponent. */
    static boolean isWhole(Object value) {
        return value instanceof Integer || value instanceof Long || value instanceof java.math.BigInteger;
    }

    private static boolean isNumber(Object value) {
        return value instanceof Number;
    }

    /** The kind of a parsed value, for messages: {@code "string"}, {@code "null"} and so on. */
    static String nameOf(Object value) {
        if (value == null || value == JSONObject.NULL) {
            return "null";
        }
        if (isWhole(value)) {
            return "integer";
        }
        if (value instanceof Number) {
            return "number";
        }
        if (value instanceof Boolean) {
            return "boolean";
        }
        if (value instanceof String) {
            return "string";
        }
        if (value instanceof JSONArray) {
            return "array";
        }
        return value instanceof JSONObject ? "object" : value.getClass().getSimpleName();
    }
}
