package org.prpnas.bridge;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import java.io.File;
import java.io.RandomAccessFile;
import org.json.JSONArray;
import org.json.JSONObject;
import org.junit.Rule;
import org.junit.Test;
import org.junit.rules.TemporaryFolder;

/** Manifest parsing and validation on the shipped bundle and on damaged copies of it. */
public class ManifestTest {
    @Rule
    public TemporaryFolder tmp = new TemporaryFolder();

    private static void assertMentions(Throwable e, String... parts) {
        for (String part : parts) {
            assertTrue("'" + part + "' not in: " + e.getMessage(), e.getMessage().contains(part));
        }
    }

    private static String invalid(JSONObject json) {
        return assertThrows(BundleException.class, () -> Bundles.parse(json)).getMessage();
    }

    /** Every field against the same manifest.json read as plain JSON (any bundle, any values). */
    @Test
    public void readsTheShippedBundle() throws Exception {
        Manifest m = Bundles.shippedManifest();
        JSONObject raw = Bundles.rawJson();
        assertEquals(Bundles.ids(), m.ids());
        JSONArray paths = raw.getJSONArray("paths");
        for (int i = 0; i < paths.length(); i++) {
            JSONObject p = paths.getJSONObject(i);
            PathInfo info = m.path(p.getString("id"));
            assertEquals(p.getString("method"), info.method());
            assertEquals(p.getDouble("accuracy"), info.accuracy(), 0.0);
            for (String key : new String[] {"energy_mj", "latency_ms"}) {
                Double parsed = key.equals("energy_mj") ? info.energyMj() : info.latencyMs();
                if (p.isNull(key)) {
                    assertNull(key, parsed);
                } else {
                    assertEquals(key, p.getDouble(key), parsed, 0.0);
                }
            }
            assertEquals(p.getJSONArray("ops").length(), info.ops().size());
            assertEquals(p.getJSONArray("ops").getString(0), info.ops().get(0));
            assertEquals(p.getLong("params"), info.params());
            assertEquals(p.getLong("macs"), info.macs());
            assertEquals(p.getInt("pareto_rank"), info.paretoRank());
        }
        JSONArray classes = raw.getJSONArray("classes");
        assertEquals(classes.length(), m.classes().size());
        assertEquals(classes.getString(0), m.classes().get(0));
        assertEquals(raw.getJSONObject("files").length(), m.files().size());
        InputSpec in = m.input();
        JSONArray shape = raw.getJSONObject("input").getJSONArray("shape");
        assertEquals(shape.getInt(1), in.channels());
        assertEquals(shape.getInt(2), in.height());
        assertEquals(shape.getInt(3), in.width());
        assertEquals(1, in.programBatch());
        JSONArray mean = raw.getJSONObject("input").getJSONArray("mean");
        JSONArray std = raw.getJSONObject("input").getJSONArray("std");
        for (int c = 0; c < in.channels(); c++) {
            assertEquals((float) mean.getDouble(c), in.mean()[c], 0f);
            assertEquals((float) std.getDouble(c), in.std()[c], 0f);
        }
        assertEquals(new File(Bundles.shipped(), "supernet.pte").getCanonicalFile(), m.programFile());
        assertThrows(PolicyException.class, () -> m.path("not_a_path"));
    }

    @Test
    public void truncatedManifestIsDamaged() throws Exception {
        File dir = Bundles.copy(tmp.newFolder("b"));
        File manifest = new File(dir, Manifest.FILE_NAME);
        RandomAccessFile f = new RandomAccessFile(manifest, "rw");
        f.setLength(f.length() / 2);
        f.close();
        BundleException e = assertThrows(BundleException.class, () -> Manifest.load(dir));
        assertMentions(e, manifest.toString(), "is damaged", "export the bundle again");
        assertTrue("message carries the whole file: " + e.getMessage().length(), e.getMessage().length() < 400);

        f = new RandomAccessFile(manifest, "rw"); // sparse: no disk is spent on it
        f.setLength(Manifest.MAX_MANIFEST_BYTES + 1L);
        f.close();
        assertMentions(assertThrows(BundleException.class, () -> Manifest.load(dir)), manifest.toString(),
                "is larger than 64 MB: not a manifest");
    }

    @Test
    public void trailingTextAndNonUtf8AreDamaged() throws Exception {
        File dir = Bundles.copy(tmp.newFolder("b"));
        File manifest = new File(dir, Manifest.FILE_NAME);
        Bundles.write(manifest, Bundles.shippedJson().toString() + "\n}garbage");
        assertMentions(assertThrows(BundleException.class, () -> Manifest.load(dir)), "is damaged", "after the JSON");
        Bundles.write(manifest, new byte[] {'{', (byte) 0xff, (byte) 0xfe, '}'});
        assertMentions(assertThrows(BundleException.class, () -> Manifest.load(dir)), "not UTF-8");
        Bundles.write(manifest, "[1, 2]");
        assertMentions(assertThrows(BundleException.class, () -> Manifest.load(dir)), "manifest must be an object");
    }

    @Test
    public void newerSchemaNamesTheFix() throws Exception {
        JSONObject json = Bundles.shippedJson().put("schema_version", ManifestSchema.SCHEMA_VERSION + 1);
        String message = invalid(json);
        String newer = "schema_version " + (ManifestSchema.SCHEMA_VERSION + 1) + " is newer than this library reads ("
                + ManifestSchema.SCHEMA_VERSION + ")";
        assertTrue(message, message.contains(newer));
        assertTrue(message, message.contains("upgrade the prp-nas Android bridge"));
    }

    /** int8 exports add {@code precision} and {@code fp32_test_accuracy}; older bundles lack both. */
    @Test
    public void precisionIsReadAndChecked() throws Exception {
        JSONObject json = Bundles.shippedJson();
        JSONArray paths = json.getJSONArray("paths");
        for (int i = 0; i < paths.length(); i++) {
            paths.getJSONObject(i).remove("precision");
            paths.getJSONObject(i).remove("fp32_test_accuracy");
        }
        PathInfo first = Bundles.parse(json).paths().get(0);
        assertEquals("float32", first.precision());
        assertNull(first.fp32TestAccuracy());

        paths.getJSONObject(0).put("precision", "int8").put("fp32_test_accuracy", 71.25);
        Manifest mixed = Bundles.parse(json); // one int8 path beside float32 ones
        assertEquals("int8", mixed.paths().get(0).precision());
        assertEquals(71.25, mixed.paths().get(0).fp32TestAccuracy(), 0.0);
        assertEquals("float32", mixed.paths().get(paths.length() - 1).precision());

        paths.getJSONObject(0).put("precision", "int4").put("fp32_test_accuracy", "high");
        String message = invalid(json);
        assertTrue(message, message.contains("manifest.paths[0].precision must be 'float32' or 'int8', got 'int4'"));
        assertTrue(message, message.contains("manifest.paths[0].fp32_test_accuracy is a string; expected number"));
    }

    @Test
    public void missingKeysAndWrongKindsAreNamed() throws Exception {
        JSONObject json = Bundles.shippedJson();
        json.remove("policies");
        assertTrue(invalid(json).contains("manifest lacks 'policies'"));

        json = Bundles.shippedJson();
        Bundles.ids(2, "missingKeysAndWrongKindsAreNamed");
        json.getJSONArray("paths").getJSONObject(1).put("params", "many").remove("method");
        json.getJSONObject("input").put("mean", "zero");
        String message = invalid(json);
        assertTrue(message, message.contains("manifest.paths[1] lacks 'method'"));
        assertTrue(message, message.contains("manifest.paths[1].params is a string; expected integer"));
        assertTrue(message, message.contains("manifest.input.mean is a string; expected array"));

        json = Bundles.latencyObjectiveJson();
        json.getJSONArray("paths").getJSONObject(0).put("energy_mj", JSONObject.NULL);
        assertNull(Bundles.parse(json).paths().get(0).energyMj()); // null energy is allowed (not the objective)
        json.getJSONArray("paths").getJSONObject(0).put("accuracy", 12.5);
        assertTrue(invalid(json).contains("ordered from most to least accurate"));
    }

    @Test
    public void pathsMethodsAndFilesAreChecked() throws Exception {
        int last = Bundles.ids(2, "pathsMethodsAndFilesAreChecked").size() - 1;
        JSONObject json = Bundles.shippedJson();
        JSONArray paths = json.getJSONArray("paths");
        paths.getJSONObject(last).put("method", paths.getJSONObject(0).getString("method"));
        assertTrue(invalid(json).contains("duplicate method names"));

        json = Bundles.shippedJson();
        json.getJSONArray("paths").getJSONObject(last).put("onnx", "gone.onnx");
        assertTrue(invalid(json).contains("manifest.paths[" + last + "].onnx 'gone.onnx' is not listed in files"));

        json = Bundles.shippedJson();
        json.getJSONObject("files").put("supernet.pte", "abc");
        assertTrue(invalid(json).contains("manifest.files['supernet.pte'] must be a sha256 hex digest"));

        json = Bundles.shippedJson();
        json.put("paths", new org.json.JSONArray());
        assertTrue(invalid(json).contains("manifest.paths is empty"));

        json = Bundles.shippedJson();
        json.getJSONObject("input").put("shape", new org.json.JSONArray("[1, 3, 32]"));
        assertTrue(invalid(json).contains("is not (N, C, H, W)"));
    }

    @Test
    public void alteredOrMissingFilesAreNamed() throws Exception {
        File dir = Bundles.copy(tmp.newFolder("b"));
        File pte = new File(dir, "supernet.pte");
        RandomAccessFile f = new RandomAccessFile(pte, "rw");
        f.setLength(f.length() - 1);
        f.close();
        BundleException e = assertThrows(BundleException.class, () -> Manifest.load(dir));
        assertMentions(e, pte.toString(), "corrupt or truncated", "copy or export the bundle again");
        // The message names the file, never a hash (neither the listed one nor the file's).
        String listed = Bundles.shippedManifest().files().get("supernet.pte");
        for (String digest : new String[] {Checksums.sha256(pte), listed}) {
            assertFalse(e.getMessage(), e.getMessage().contains(digest.substring(0, 12)));
        }
        Manifest.load(dir, false); // without checksums it loads

        assertTrue(new File(dir, "weights.bin").delete());
        Bundles.copyFile(new File(Bundles.shipped(), "supernet.pte"), pte);
        assertMentions(assertThrows(BundleException.class, () -> Manifest.load(dir)), "weights.bin is missing");

        File nowhere = new File(tmp.getRoot(), "nowhere");
        assertMentions(assertThrows(BundleException.class, () -> Manifest.load(nowhere)), "does not exist");
        File empty = tmp.newFolder("empty");
        assertMentions(assertThrows(BundleException.class, () -> Manifest.load(empty)), "is not a bundle");
    }

    @Test
    public void checksumsAreSha256() throws Exception {
        File f = tmp.newFile("abc");
        Bundles.write(f, "abc");
        assertEquals("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", Checksums.sha256(f));
        Manifest m = Bundles.shippedManifest();
        assertEquals(m.files().get("supernet.pte"), Checksums.sha256(m.programFile()));
    }

    @Test
    public void copiesDoNotChangeTheManifest() throws Exception {
        Manifest m = Bundles.shippedManifest();
        m.policyTables().put("default", "changed");
        m.toJson().put("paths", "x");
        assertEquals(Bundles.rawJson().getJSONObject("policies").getString("default"),
                m.policyTables().getString("default"));
        assertArrayEquals(new long[] {2, 3, 32, 32}, m.input().batchShape(2));
    }
}
