#!/usr/bin/env python3
"""The bad-input corpus (issue 9): hostile or damaged inputs of every kind lsa reads or writes, each
generated here from a good fixture (no binary is committed), each run through the CLI. Every case must give
exit status 1 (2 for the one usage mistake) and exactly one stderr line "lsa: error: ..." that names the
problem (the phrases listed with the case), and must leave no output file behind (nor change the partial
file of an interrupted capture). Cases already covered by tests/test_errors.c,
test_gguf.c, test_llama2c.c and test_capture_layout.py are not repeated here.

Kinds: truncated files at many offsets, huge declared sizes, negative/overflowing shapes, NaN/Inf weights,
config values out of range, text with invalid UTF-8 or NULs, tokenizer files, HDF5 captures with missing
datasets or wrong shapes, output paths that are directories or cannot be created, a file size limit and
(when mount works) a full tmpfs, and resuming with other options or other input.
Usage: bad_inputs.py PATH_TO_LSA"""
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import tempfile

import h5py
import numpy as np

LSA = sys.argv[1]
SHARED = "../shared"
LLAMA = f"{SHARED}/fixtures/tiny-llama"
SMALL = f"{SHARED}/fixtures/stories260K-hf"
GGUF = f"{SHARED}/models/stories260K/stories260K.gguf"
L2C_TOK = f"{SHARED}/models/stories260K/tok512.bin"
for p in (LLAMA, SMALL, GGUF, L2C_TOK):
    if not os.path.exists(p):
        sys.exit(f"FAIL: required test data {p} is missing (../shared must sit beside the checkout)")

tmp = tempfile.mkdtemp(prefix="lsa-bad-")
failures, cases = [], 0


def run_case(name, args, phrases, no_file=None, preexec=None, before=None):
    """lsa ARGS must exit 1 with one 'lsa: error:' line containing every phrase; no_file must not exist."""
    global cases
    cases += 1
    res = subprocess.run([LSA] + args, capture_output=True, text=True, errors="replace", preexec_fn=preexec)
    lines = res.stderr.strip().splitlines()
    msg = lines[0] if lines else ""
    ok = res.returncode == 1 and len(lines) == 1 and msg.startswith("lsa: error: ")
    missing = [p for p in phrases if p not in msg]
    if no_file and os.path.exists(no_file):
        failures.append(f"{name}: left {no_file} behind")
    if before is not None and before != snapshot(before[0]):
        failures.append(f"{name}: {before[0]} was changed")
    if not ok or missing:
        failures.append(f"{name}: exit {res.returncode}, stderr {res.stderr!r}; want one 'lsa: error:' line with {missing or phrases}")
        print(f"  FAIL {name}")
    else:
        print(f"  ok {name}: {msg[12:]}")


def snapshot(path):
    st = os.stat(path)
    return (path, st.st_size, st.st_mtime_ns)


def model_copy(name, src=LLAMA):
    d = os.path.join(tmp, name)
    os.makedirs(d)
    for f in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        if os.path.exists(os.path.join(src, f)):
            shutil.copy(os.path.join(src, f), d)
    return d


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write(path, data):
    with open(path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    return path


# ---------------------------------------------------------------- safetensors
ST = read(f"{LLAMA}/model.safetensors")
HLEN = struct.unpack("<Q", ST[:8])[0]
HDR = json.loads(ST[8:8 + HLEN])


def st_with(name, edit=None, raw=None):
    """A model folder whose model.safetensors is raw, or the fixture's with its header edited by edit(hdr)."""
    d = model_copy(name)
    if raw is None:
        hdr = json.loads(json.dumps(HDR))
        edit(hdr)
        h = json.dumps(hdr).encode() if not isinstance(hdr, bytes) else hdr
        raw = struct.pack("<Q", len(h)) + h + ST[8 + HLEN:]
    write(f"{d}/model.safetensors", raw)
    return d


def info(name, d, phrases):
    run_case(name, ["info", d], phrases)


print("safetensors")
for cut in (0, 7, 8 + 100, 8 + HLEN, 8 + HLEN + 1000, len(ST) - 4):
    d = st_with(f"st-cut-{cut}", raw=ST[:cut])
    want = {0: ["model.safetensors", "truncated safetensors file (0 bytes"],
            7: ["truncated safetensors file (7 bytes"],
            108: ["header length", "runs past the end of the file"]}.get(cut, ["outside the data block", "truncated?"])
    info(f"safetensors truncated at byte {cut}", d, want)
info("safetensors header length 2^63", st_with("st-huge-hlen", raw=struct.pack("<Q", 1 << 63) + ST[8:]),
     ["header length 9223372036854775808 runs past the end"])
N0 = "model.norm.weight"


def set_field(field, value):
    def edit(h):
        h[N0][field] = value
    return edit


info("safetensors data_offsets past the end", st_with("st-off", set_field("data_offsets", [0, 1e15])),
     [N0, "outside the data block"])
info("safetensors reversed data_offsets", st_with("st-rev", set_field("data_offsets", [256, 0])),
     [N0, "outside the data block"])
info("safetensors negative shape", st_with("st-neg", set_field("shape", [-64])), [N0, "invalid shape entry"])
info("safetensors fractional shape", st_with("st-frac", set_field("shape", [6.5])), [N0, "invalid shape entry"])
info("safetensors overflowing shape", st_with("st-ovf", set_field("shape", [2**40, 2**40, 2**40])),
     [N0, "shape overflows"])
info("safetensors rank 9", st_with("st-rank", set_field("shape", [1] * 9)), [N0, "rank 9 (max 8)"])
info("safetensors shape vs byte count", st_with("st-bytes", set_field("shape", [65])),
     [N0, "bytes for 65 elements of F32"])
info("safetensors entry not an object", st_with("st-entry", lambda h: h.__setitem__(N0, 5)),
     [N0, "entry lacks dtype, shape or data_offsets"])
dup = json.dumps(HDR)[:-1] + ', "model.norm.weight": ' + json.dumps(HDR[N0]) + "}"
info("safetensors tensor listed twice",
     st_with("st-dup", raw=struct.pack("<Q", len(dup)) + dup.encode() + ST[8 + HLEN:]), ["tensor", "appears twice"])
info("safetensors name with a newline and an escape",
     st_with("st-ctl", lambda h: h.__setitem__("x\n\x1b[31mlsa: error: y", {"dtype": "Q9", "shape": [1],
                                                                          "data_offsets": [0, 4]})),
     ["x?", "[31mlsa: error: y has unknown dtype Q9"])

# non-finite weights: the capture stops and says where (a NaN deep in a layer is in test_errors.c)
emb = HDR["model.embed_tokens.weight"]["data_offsets"][0] + 8 + HLEN
d = model_copy("inf-embedding")
raw = bytearray(ST)
for tok in range(512):  # every token's first feature
    raw[emb + tok * 64 * 4: emb + tok * 64 * 4 + 4] = struct.pack("<f", float("inf"))
write(f"{d}/model.safetensors", bytes(raw))
out = os.path.join(tmp, "inf.h5")
run_case("Inf in the token embedding", ["capture", "--model", d, "--prompt", "Once upon a time", "--out", out],
         ["non-finite activation (Inf) in the embedding output at token 0, feature 0", "--allow-nonfinite"],
         no_file=out)
d = model_copy("nan-final-norm")
raw = bytearray(ST)
fn = HDR["model.norm.weight"]["data_offsets"][0] + 8 + HLEN
raw[fn:fn + 4] = struct.pack("<f", float("nan"))
write(f"{d}/model.safetensors", bytes(raw))
out = os.path.join(tmp, "nan2.h5")
run_case("NaN in the final norm weight", ["capture", "--model", d, "--prompt", "Once upon a time", "--out", out],
         ["non-finite activation (NaN) in the final norm's output at token 0", "--allow-nonfinite"], no_file=out)

print("sharded checkpoints (model.safetensors.index.json)")


def sharded(name, weight_map):
    d = model_copy(name)
    os.rename(f"{d}/model.safetensors", f"{d}/model-00001-of-00001.safetensors")
    write(f"{d}/model.safetensors.index.json", json.dumps({"metadata": {}, "weight_map": weight_map}))
    return d


wm = {k: "model-00001-of-00001.safetensors" for k in HDR if k != "__metadata__"}
info("index entry escaping the folder", sharded("idx-escape", dict(wm, **{N0: "../../etc/passwd"})),
     ["model.safetensors.index.json", "is not a plain file name"])
info("index naming a missing shard", sharded("idx-missing", dict(wm, **{N0: "model-00002-of-00002.safetensors"})),
     ["model-00002-of-00002.safetensors", "cannot open"])
info("index listing a tensor its shard lacks", sharded("idx-absent", dict(wm, **{"model.extra.weight": wm[N0]})),
     ["model.extra.weight is listed but not in shard"])
d = sharded("idx-no-map", wm)
write(f"{d}/model.safetensors.index.json", '{"metadata": {}}')
info("index without weight_map", d, ["no weight_map object"])

print("config.json")
CFG = json.loads(read(f"{LLAMA}/config.json"))


def cfg_case(name, key, value, phrases, more=None):
    d = model_copy(name)
    c = dict(CFG, **(more or {}))
    c[key] = value
    c = {k: v for k, v in c.items() if v is not None}  # None: the key is dropped
    write(f"{d}/config.json", json.dumps(c))
    info(name, d, ["config.json"] + phrases)


cfg_case("heads do not divide hidden size", "num_attention_heads", 5, ["5 heads do not divide hidden size 64"],
         {"num_key_value_heads": 5, "head_dim": None})
cfg_case("negative layer count", "num_hidden_layers", -1, ["num_hidden_layers has an invalid value"])
cfg_case("layer count 1e12", "num_hidden_layers", 1e12, ["num_hidden_layers has an invalid value"])
cfg_case("hidden size as a string", "hidden_size", "64", ["hidden_size has an invalid value"])
cfg_case("vocabulary of 0", "vocab_size", 0, ["must all be > 0"])
cfg_case("zero norm epsilon", "rms_norm_eps", 0, ["norm epsilon must be > 0"])
cfg_case("unsupported activation", "hidden_act", "tanh", ["activation \"tanh\" is not supported"])
cfg_case("zero rope theta", "rope_parameters", {"rope_type": "default", "rope_theta": 0}, ["rope_theta must be > 0"])
cfg_case("partial rotary factor 2", "partial_rotary_factor", 2, ["partial rotary factor must be in (0, 1]"])
cfg_case("negative linear rope factor", "rope_parameters", {"rope_type": "linear", "factor": -1, "rope_theta": 1e4},
         ["rope scaling factor must be > 0"])
cfg_case("head_dim 0", "head_dim", 0, ["head_dim has an invalid value"])
d = model_copy("config-dir")
os.remove(f"{d}/config.json")
os.mkdir(f"{d}/config.json")
info("config.json is a directory", d, ["config.json", "Is a directory"])
d = model_copy("config-empty")
write(f"{d}/config.json", "")
info("empty config.json", d, ["config.json", "not a valid JSON object"])

print("tokenizer.json")
TOK = read(f"{LLAMA}/tokenizer.json")
TOKJ = json.loads(TOK)


def tok_case(name, data, phrases):
    d = model_copy(name)
    write(f"{d}/tokenizer.json", data if isinstance(data, (bytes, str)) else json.dumps(data))
    info(name, d, ["tokenizer.json"] + phrases)


tok_case("tokenizer.json cut in half", TOK[:len(TOK) // 2], ["invalid JSON near byte"])
tok_case("WordPiece model", dict(TOKJ, model=dict(TOKJ["model"], type="WordPiece")),
         ["model type \"WordPiece\" is not supported"])
big = json.loads(TOK)
big["added_tokens"].append({"id": 5000, "content": "<big>", "special": True, "single_word": False, "lstrip": False,
                            "rstrip": False, "normalized": False})
tok_case("token id past the model's vocabulary", big, ["tokenizer has 5001 ids but the model's vocabulary is 512"])
bad_merge = json.loads(TOK)
bad_merge["model"]["merges"] = [["\u2581t", "zzzz"]] + bad_merge["model"]["merges"]
tok_case("merge of an unknown token", bad_merge, ["merge 0", "is not in the vocabulary"])
neg = json.loads(TOK)
neg["added_tokens"][0]["id"] = -3
tok_case("negative token id", neg, ["has id -3, expected an integer in [0,"])

print("text inputs")
out = os.path.join(tmp, "text.h5")


def text_case(name, flag, data, phrases):
    p = write(os.path.join(tmp, name.replace(" ", "-") + ".txt"), data)
    run_case(name, ["capture", "--model", SMALL, flag, p, "--out", out], phrases, no_file=out)


text_case("NUL byte in a --text file", "--text", b"Once upon a time\x00 there was", ["NUL byte at byte 16"])
text_case("NUL byte on a --lines line", "--lines", b"fine line\nbad \x00 line\n", [":2: NUL byte at byte 4"])
text_case("UTF-16 text file", "--lines", "Once upon a time\n".encode("utf-16"), [":1:", "NUL byte", "UTF-16"])
text_case("Latin-1 text file", "--lines", "Caf\xe9 au lait\n".encode("latin-1"), [":1:", "not valid UTF-8 at byte offset 3"])
text_case("UTF-8 cut at the end of a file", "--text", b"Once upon a time \xe2\x96", ["UTF-8"])
text_case("overlong UTF-8 encoding", "--lines", b"ok\nslash \xc0\xaf here\n", [":2:", "UTF-8"])
text_case("UTF-8 surrogate", "--lines", b"surrogate \xed\xa0\x80\n", [":1:", "UTF-8"])
text_case("\\u0000 in a JSON line", "--jsonl", b'{"text": "fine"}\n{"text": "cut \\u0000 here"}\n',
          [":2:", "\\u0000 (a NUL character)"])
text_case("invalid JSON line", "--jsonl", b'{"text": "fine"}\n{"text": "unterminated}\n', [":2: not valid JSON"])
os.mkdir(os.path.join(tmp, "a-folder.txt"))
run_case("--lines names a directory", ["capture", "--model", SMALL, "--lines", os.path.join(tmp, "a-folder.txt"),
                                       "--out", out], ["a-folder.txt", "Is a directory"], no_file=out)
run_case("--text names a directory", ["capture", "--model", SMALL, "--text", os.path.join(tmp, "a-folder.txt"),
                                      "--out", out], ["a-folder.txt", "Is a directory"], no_file=out)

print("GGUF and llama2.c")
G = read(GGUF)
for cut in (10, 1000, 5000, 600000):
    p = write(os.path.join(tmp, f"cut{cut}.gguf"), G[:cut])
    want = {10: ["truncated GGUF file (10 bytes"], 1000: ["tensor count 48 is more than", "truncated or corrupt"],
            5000: ["runs past the end of the file"]}.get(cut, ["lies outside the data section"])
    info(f"GGUF truncated at byte {cut}", p, [f"cut{cut}.gguf"] + want)
arch_at = G.find(b"general.architecture") + len(b"general.architecture") + 4 + 8
p = write(os.path.join(tmp, "mamba.gguf"), G[:arch_at] + b"mamba" + G[arch_at + 5:])
info("GGUF of an unknown architecture", p, ["GGUF architecture \"mamba\" is not supported"])
L2C = read(f"{SHARED}/models/stories260K/stories260K.bin")
d = os.path.join(tmp, "l2c")
os.mkdir(d)
p = write(f"{d}/cut.bin", L2C[:27])
info("llama2.c checkpoint cut inside its header", p, ["cut.bin", "truncated llama2.c checkpoint (27 bytes"])
p = write(f"{d}/long.bin", L2C + b"\0" * 64)
info("llama2.c checkpoint with trailing bytes", p, ["long.bin", "but the header", "implies 1056540"])
TB = read(L2C_TOK)
tb = write(f"{d}/tokzero.bin", struct.pack("<i", 0) + TB[4:])
run_case("tokenizer.bin with max_token_length 0", ["info", f"{SHARED}/models/stories260K/stories260K.bin",
                                                  "--tokenizer", tb], ["tokzero.bin", "max_token_length 0"])
tb = write(f"{d}/toklong.bin", TB[:4] + struct.pack("<fi", 0, 10**6) + TB[12:])
run_case("tokenizer.bin token longer than the maximum", ["info", f"{SHARED}/models/stories260K/stories260K.bin",
                                                         "--tokenizer", tb], ["toklong.bin", "token 0 has length 1000000"])

print("captures (HDF5)")
base = os.path.join(tmp, "base.h5")
res = subprocess.run([LSA, "capture", "--quiet", "--model", SMALL, "--prompt", "Once upon a time there was a cat.",
                      "--prompt", "The end.", "--out", base], capture_output=True, text=True)
if res.returncode != 0:
    sys.exit(f"FAIL: cannot make the base capture: {res.stderr}")


def cap_case(name, edit, phrases):
    p = os.path.join(tmp, name.replace(" ", "-").replace("/", "") + ".h5")
    if callable(edit):
        shutil.copy(base, p)
        with h5py.File(p, "r+") as f:
            edit(f)
    else:
        write(p, edit)
    rdir = os.path.join(tmp, "report-" + os.path.basename(p))
    run_case(name, ["report", p, "--out", rdir, "--analyses", "similarity", "--no-figures", "--quiet"], phrases,
             no_file=os.path.join(rdir, "summary.json"))


def replace(f, name, data):
    attrs = dict(f[name].attrs)
    del f[name]
    f[name] = data
    for k, v in attrs.items():
        f[name].attrs[k] = v


B = read(base)
cap_case("capture that is not HDF5", b"lsa-capture\n" * 100, ["not an HDF5 file"])
cap_case("capture cut in half", B[:len(B) // 2], ["HDF5"])
cap_case("capture without /resid", lambda f: f.__delitem__("resid"), ["dataset /resid is missing"])
cap_case("capture with /resid of rank 2", lambda f: replace(f, "resid", f["resid"][0]), ["/resid has rank 2, expected 3"])
cap_case("capture with a short /tokens", lambda f: replace(f, "tokens", f["tokens"][:-1]), ["/tokens has", "entries, /resid has"])
cap_case("capture whose /seq_offsets miss the end", lambda f: replace(f, "seq_offsets", f["seq_offsets"][:-1]),
         ["/seq_offsets runs from 0 to"])
cap_case("capture of another format", lambda f: f.attrs.__setitem__("format", "lsa-results"), ["not an lsa capture"])
cap_case("capture format_version 2", lambda f: f.attrs.__setitem__("format_version", 2),
         ["capture format_version 2, this lsa reads version 1"])
cap_case("capture whose d_model disagrees", lambda f: f.attrs.__setitem__("d_model", 65),
         ["/resid has 64 features, attribute d_model says 65"])
cap_case("capture with too few point names", lambda f: f["resid"].attrs.__setitem__("points", ["embed"]),
         ["points but 1 names"])
cap_case("capture whose point_index goes down",
         lambda f: f["resid"].attrs.__setitem__("point_index", np.arange(6)[::-1].copy()), ["point_index is not increasing"])
cap_case("capture with a wrong /resid_final", lambda f: replace(f, "resid_final", f["resid_final"][:, :10]),
         ["/resid_final has shape"])


def nan_resid(f):
    r = f["resid"][()]
    r[2, 3, 5] = np.nan
    replace(f, "resid", r)


cap_case("capture with NaN activations", nan_resid, ["/resid has a non-finite value", "token 3"])


def damaged_chunk(garble):
    """The base capture with one stored /resid chunk garbled in place (lsa inflates chunks itself)."""
    with h5py.File(base, "r") as f:
        ci = f["resid"].id.get_chunk_info(1)
    b = bytearray(B)
    garble(b, ci.byte_offset, ci.size)
    return bytes(b)


def flip(b, off, size):
    for i in range(off + size // 3, off + size // 3 + 16):
        b[i] ^= 0x5A


def zero_tail(b, off, size):
    b[off + size - 8:off + size] = bytes(8)


cap_case("capture with a garbled compressed chunk", damaged_chunk(flip), ["/resid: the chunk at (1, 0, 0) does not inflate", "damaged"])
cap_case("capture whose chunk checksum is wrong", damaged_chunk(zero_tail), ["/resid: the chunk at (1, 0, 0) does not inflate", "damaged"])

print("output paths")
out_dir = os.path.join(tmp, "outdir.h5")
os.mkdir(out_dir)
run_case("--out is a directory", ["capture", "--model", SMALL, "--prompt", "hi", "--out", out_dir],
         ["outdir.h5: is a directory"])
run_case("--out in /proc (not writable, even for root)", ["capture", "--model", SMALL, "--prompt", "hi", "--out",
                                                         "/proc/lsa-bad.h5"], ["/proc/lsa-bad.h5", "cannot create"])
write(os.path.join(tmp, "plainfile"), "x")
run_case("--out under a regular file", ["capture", "--model", SMALL, "--prompt", "hi", "--out",
                                        os.path.join(tmp, "plainfile", "x.h5")], ["plainfile/x.h5", "cannot create"])
if os.geteuid() != 0:  # root writes into read-only folders; /proc above covers it then
    ro = os.path.join(tmp, "readonly")
    os.mkdir(ro)
    os.chmod(ro, 0o555)
    run_case("--out in a read-only folder", ["capture", "--model", SMALL, "--prompt", "hi", "--out",
                                             os.path.join(ro, "x.h5")], ["x.h5", "cannot create"])
big_in = os.path.join(tmp, "big.txt")
with open(f"{SHARED}/data/tinystories-sampled-val.txt", encoding="utf-8") as f, open(big_in, "w") as g:
    for _ in range(60):
        g.write(f.readline())
out = os.path.join(tmp, "limited.h5")


def limit_size():
    resource.setrlimit(resource.RLIMIT_FSIZE, (2 << 20, 2 << 20))  # files of at most 2 MiB: "disk full"


run_case("file size limit (ulimit -f) reached", ["capture", "--model", SMALL, "--lines", big_in, "--out", out,
                                                 "--compress", "0"], ["File too large"], no_file=out + ".partial",
         preexec=limit_size)
mnt = os.path.join(tmp, "tmpfs")
os.mkdir(mnt)
if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt], capture_output=True).returncode == 0:
    try:
        out = os.path.join(mnt, "full.h5")
        run_case("full disk (1 MiB tmpfs)", ["capture", "--model", SMALL, "--lines", big_in, "--out", out,
                                             "--compress", "0"], ["No space left on device"], no_file=out + ".partial")
    finally:
        subprocess.run(["umount", mnt])
else:
    print("  (mount -t tmpfs is not permitted here: the full-disk case runs through the size limit only)")

print("resuming")
ropts = ["--model", SMALL, "--lines", big_in, "--ctx", "32", "--quiet"]
done = os.path.join(tmp, "done.h5")
subprocess.run([LSA, "capture", "--out", done] + ropts, check=True)
r_out = os.path.join(tmp, "r.h5")
partial = r_out + ".partial"
shutil.copy(done, partial)  # a finished capture is a valid interrupted one


def resume_case(name, extra, phrases, args=None):
    run_case(name, ["capture", "--out", r_out] + (args or ropts) + extra, phrases, no_file=r_out,
             before=snapshot(partial))


resume_case("partial file without --resume", [], ["r.h5.partial exists", "--resume", "remove the file"])
resume_case("resume with another --ctx", ["--resume", "--ctx", "16"], ["used --ctx 32, this run 16"])
resume_case("resume with another --dtype", ["--resume", "--dtype", "f32"], ["used --dtype f16, this run --dtype f32"])
resume_case("resume with other --layers", ["--resume", "--layers", "0-2"], ["the points (--layers) 0,1,2,3,4,5, this run 0,1,2"])
resume_case("resume with other --components", ["--resume", "--components", "resid,mid"],
            ["did not store resid_mid", "(--components)"])
resume_case("resume with another layer plan", ["--resume", "--skip", "1"], ["the layer plan (layer_order) 0,1,2,3,4, this run 0,2,3,4"])
resume_case("resume with --no-bos", ["--resume", "--no-bos"], ["bos (--bos/--no-bos) 1, this run 0"])
resume_case("resume with another model", ["--resume"], ["used the model", "stories260K-hf", "tiny-llama"],
            args=["--model", LLAMA, "--lines", big_in, "--ctx", "32", "--quiet"])
other = write(os.path.join(tmp, "other.txt"), read(big_in).replace(b"Once", b"Twice", 1))
resume_case("resume with other input", ["--resume"], ["input differs from the interrupted run at sequence 0"],
            args=["--model", SMALL, "--lines", other, "--ctx", "32", "--quiet"])
short = write(os.path.join(tmp, "short.txt"), b"".join(read(big_in).splitlines(True)[:5]))
resume_case("resume with shorter input", ["--resume"], ["input differs from the interrupted run at sequence",
                                                         "it ends there"],
            args=["--model", SMALL, "--lines", short, "--ctx", "32", "--quiet"])
res = subprocess.run([LSA, "capture", "--resume"] + ropts, capture_output=True, text=True)
cases += 1
if res.returncode != 2 or "--resume needs --out" not in res.stderr:
    failures.append(f"--resume without --out: exit {res.returncode}, {res.stderr!r}")
else:
    print(f"  ok --resume without --out (usage, exit 2): {res.stderr.strip()[12:]}")
write(partial, b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
resume_case("resume from a damaged partial file", ["--resume"], ["cannot resume", "remove", "to start afresh"])
with h5py.File(partial, "w") as f:
    f["x"] = [1, 2, 3]
resume_case("resume from an HDF5 file that is no capture", ["--resume"], ["not a resumable lsa capture"])

print(f"bad_inputs: {cases} cases, {len(failures)} failed")
for f in failures:
    print("FAIL:", f, file=sys.stderr)
if cases < 40:
    print(f"FAIL: only {cases} cases ran (want at least 40)", file=sys.stderr)
if not failures:
    shutil.rmtree(tmp, ignore_errors=True)
sys.exit(1 if failures or cases < 40 else 0)
