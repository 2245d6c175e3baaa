/*
 * test_lens — the logit lens against golden truths: at the last residual point the lens is the model
 * itself, so its cross-entropy equals transformers' mean NLL, KL to the final distribution is ~0 and
 * top-1 agreement is 1; entropies and probabilities are in range everywhere; the grid's top-1 at the last
 * point is transformers' top-1; and the lens's decoding (lsa_fwd_unembed) of the last stored point gives
 * transformers' logits (golden `logits`) within 1e-4. Readable token pieces for byte-level and
 * SentencePiece vocabularies. Captures are made with the CLI (path given as argv[1]).
 */
#include "logit_lens.h"
#include "lsa/h5.h"
#include "testutil.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    REQUIRE(argc == 2, "usage: test_lens PATH_TO_LSA");
    const char *dirs[] = {"fixtures/tiny-llama", "fixtures/tiny-gpt2", "fixtures/tiny-gemma", "fixtures/tiny-gpt_neox",
                          "models/tinystories-llama-12L"};
    char tmp[256], text[600], cap[600], cmd[3000];
    snprintf(tmp, sizeof tmp, "/tmp/lsa-test-lens-%d", (int)getpid());
    REQUIRE(mkdir(tmp, 0755) == 0, "mkdir %s", tmp);
    for (size_t k = 0; k < sizeof dirs / sizeof dirs[0]; k++) {
        const char *dir = t_shared(dirs[k]);
        char golden[600];
        snprintf(golden, sizeof golden, "%s/golden.h5", dir);
        struct lsa_h5 *g = lsa_h5_open(golden);
        REQUIRE(g, "%s", lsa_errmsg());
        char *s;
        REQUIRE(lsa_h5_attr_str(g, "/texts/0", "text", &s) == 0, "%s", lsa_errmsg());
        snprintf(text, sizeof text, "%s/text.txt", tmp);
        FILE *fp = fopen(text, "wb");
        fputs(s, fp);
        fclose(fp);
        free(s);
        for (int f32 = 0; f32 < 2; f32++) {
            snprintf(cap, sizeof cap, "%s/cap.h5", tmp);
            snprintf(cmd, sizeof cmd, "%s capture --quiet --model %s --text %s --dtype %s --out %s", argv[1], dir, text,
                     f32 ? "f32" : "f16", cap);
            REQUIRE(system(cmd) == 0, "%s", cmd);
            struct lsa_model *m = lsa_model_load(dir);
            struct lsa_capture_reader *cr = lsa_capture_read_open(cap);
            REQUIRE(m && cr, "%s", lsa_errmsg());
            struct lsa_lens_opts o = lsa_lens_opts_default();
            o.block = 16; /* several blocks, and a sequence that spans them */
            struct lsa_lens_result *rp;
            o.per_token = 7; /* fewer than the tokens: the per-token rows are packed */
            REQUIRE(lsa_lens_run(cr, m, &o, &rp) == 0, "%s", lsa_errmsg());
            const struct lsa_lens_result r = *rp;
            float *nll;
            size_t n;
            REQUIRE(lsa_h5_read_f32(g, "/texts/0/nll", &nll, &n) == 0, "%s", lsa_errmsg());
            double mean = 0;
            for (size_t i = 0; i < n; i++) mean += nll[i];
            mean /= (double)n;
            int P = r.n_points, last = P - 1;
            double tol = f32 ? 1e-4 : 2e-2; /* f16 activations move the lens by their rounding */
            CHECK((size_t)r.n_tokens == n, "%s: %lld tokens scored, want %zu", dir, (long long)r.n_tokens, n);
            CHECK(fabs(r.cross_entropy[last] - mean) < tol,
                  "%s %s: lens CE at the last point %.6f vs golden mean nll %.6f", dir, f32 ? "f32" : "f16",
                  r.cross_entropy[last], mean);
            if (f32) {
                CHECK(r.kl_to_final[last] < 1e-6 && r.top1_agree_final[last] == 1.0,
                      "%s: last point KL %.3g, top-1 agreement %g", dir, r.kl_to_final[last], r.top1_agree_final[last]);
                int64_t *top5;
                REQUIRE(lsa_h5_read_i64(g, "/texts/0/top5_ids", &top5, &n) == 0, "%s", lsa_errmsg());
                int bad = 0;
                for (int c = 0; c < r.grid_cols; c++)
                    bad += r.grid_top[(size_t)last * r.grid_cols + c] != top5[(size_t)c * 5];
                CHECK(bad == 0, "%s: grid top-1 at the last point differs from transformers' at %d positions", dir,
                      bad);
                free(top5);
                /* the lens's decoding of the last stored point is the model's own output (the fixtures with
                 * a big vocabulary store no logits) */
                if (!lsa_h5_exists(g, "/texts/0/logits")) {
                    printf("  %s: no golden logits (CE and top-1 only)\n", dir);
                    goto next;
                }
                const struct lsa_capture_info *ci = lsa_capture_read_info(cr);
                int V = lsa_model_arch(m)->n_vocab, D = ci->d_model, N = (int)ci->n_tokens;
                float *x = malloc(sizeof(float) * (size_t)P * N * D), *z = malloc(sizeof(float) * (size_t)N * V), *gl;
                struct lsa_fwd *fw = lsa_fwd_new(m, N);
                REQUIRE(x && z && fw, "out of memory");
                REQUIRE(lsa_capture_read_resid(cr, 0, N, x) == 0 &&
                            lsa_fwd_unembed(fw, x + (size_t)last * N * D, N, z) == 0,
                        "%s", lsa_errmsg());
                REQUIRE(lsa_h5_read_f32(g, "/texts/0/logits", &gl, &n) == 0, "%s", lsa_errmsg());
                REQUIRE(n == (size_t)N * V, "%s: golden logits hold %zu values, want %d x %d", dir, n, N, V);
                double worst = 0, scale = 0;
                size_t at = 0;
                for (size_t i = 0; i < n; i++) {
                    double e = fabs((double)z[i] - gl[i]);
                    if (e > worst) worst = e, at = i;
                    scale = fmax(scale, fabs(gl[i]));
                }
                CHECK(worst < 1e-4, "%s: lens logits at the last point differ from golden by %.3g at token %zu, id %zu "
                      "(tol 1e-4)", dir, worst, at / V, at % V);
                printf("  %s: lens logits at the last point vs golden: max abs err %.2e (|logit| up to %.1f)\n", dir,
                       worst, scale);
                free(x), free(z), free(gl);
                lsa_fwd_free(fw);
            }
        next:
            for (int l = 0; l < P; l++) {
                double Hmax = log((double)lsa_model_arch(m)->n_vocab);
                CHECK(r.entropy[l] >= 0 && r.entropy[l] <= Hmax + 1e-9 && r.true_prob[l] > 0 && r.true_prob[l] <= 1 &&
                          r.kl_to_final[l] >= 0 && r.true_rank_median[l] >= 0,
                      "%s point %d: entropy %g prob %g kl %g", dir, l, r.entropy[l], r.true_prob[l], r.kl_to_final[l]);
                CHECK(isfinite(r.cross_entropy[l]) && r.cross_entropy[l] >= 0, "%s point %d: CE %g", dir, l,
                      r.cross_entropy[l]);
            }
            /* per-token values: the first min(7, scored) tokens, agreeing with the means' definitions */
            CHECK(r.n_kept == (r.n_tokens < 7 ? r.n_tokens : 7), "%s: n_kept %lld", dir, (long long)r.n_kept);
            for (int l = 0; l < P; l++)
                for (int64_t kk = 0; kk < r.n_kept; kk++) {
                    size_t i = (size_t)l * r.n_kept + kk;
                    CHECK(fabs(exp(-r.tok_ce[i]) - r.tok_true_prob[i]) < 1e-6 && r.tok_kl[i] >= 0 &&
                              r.tok_true_rank[i] >= 0,
                          "%s point %d token %lld: ce %g prob %g kl %g", dir, l, (long long)kk, r.tok_ce[i],
                          r.tok_true_prob[i], r.tok_kl[i]);
                }
            printf("  %s (%s): %d points, CE first %.3f last %.4f (golden %.4f), KL first %.3f\n", dir,
                   f32 ? "f32" : "f16", P, r.cross_entropy[0], r.cross_entropy[last], mean, r.kl_to_final[0]);
            lsa_lens_free(rp);
            free(nll);
            lsa_capture_read_close(cr);
            lsa_model_free(m);
        }
        lsa_h5_close(g);
    }
    /* readable pieces */
    struct lsa_model *sp = lsa_model_load(t_shared("models/tinystories-llama-12L"));
    struct lsa_model *bl = lsa_model_load(t_shared("fixtures/tiny-gpt2"));
    REQUIRE(sp && bl, "%s", lsa_errmsg());
    const struct lsa_tokenizer *tsp = lsa_model_tokenizer(sp), *tbl = lsa_model_tokenizer(bl);
    char buf[64], small[12];
    int32_t *ids;
    size_t nid;
    REQUIRE(lsa_tokenizer_encode(tsp, " the\n", 5, false, &ids, &nid) == 0, "%s", lsa_errmsg());
    char all[256] = "";
    for (size_t i = 0; i < nid; i++) strcat(all, lsa_lens_piece_label(tsp, ids[i], buf, sizeof buf)), strcat(all, "|");
    CHECK(strstr(all, "\xc2\xb7the|\xe2\x86\xb5|") && !strstr(all, "\xe2\x96\x81"), "SentencePiece pieces: %s", all);
    printf("  SentencePiece ' the\\n' -> %s\n", all);
    free(ids);
    REQUIRE(lsa_tokenizer_encode(tbl, " the\n\xc3\xa9", 7, false, &ids, &nid) == 0, "%s", lsa_errmsg());
    all[0] = 0;
    for (size_t i = 0; i < nid; i++) strcat(all, lsa_lens_piece_label(tbl, ids[i], buf, sizeof buf)), strcat(all, "|");
    CHECK(strstr(all, "\xc2\xb7the|") && strstr(all, "\xe2\x86\xb5") && !strstr(all, "\xc4\xa0") &&
              !strstr(all, "\xc4\x8a"),
          "byte-level pieces: %s", all);
    printf("  byte-level ' the\\n\xc3\xa9' -> %s\n", all);
    free(ids);
    CHECK(!strcmp(lsa_lens_piece_label(tsp, 13, buf, sizeof buf), "\xe2\x86\xb5"), "<0x0A> -> %s", buf);
    CHECK(!strcmp(lsa_lens_piece_label(tsp, 3 + 0x41, buf, sizeof buf), "A"), "<0x41> -> %s", buf);
    CHECK(!strcmp(lsa_lens_piece_label(tsp, 3 + 0xE2, buf, sizeof buf), "<E2>"), "<0xE2> -> %s", buf);
    CHECK(!strcmp(lsa_lens_piece_label(tsp, 1, buf, sizeof buf), "<s>"), "<s> -> %s", buf);
    CHECK(!strcmp(lsa_lens_piece_label(NULL, 42, buf, sizeof buf), "#42"), "no tokenizer -> %s", buf);
    CHECK(!strcmp(lsa_lens_piece_label(tsp, 100000, buf, sizeof buf), "#100000"), "out of range -> %s", buf);
    lsa_lens_piece_label(tbl, 50256, small, sizeof small); /* <|endoftext|> cut to fit */
    CHECK(strlen(small) < sizeof small && strstr(small, "\xe2\x80\xa6"), "cut piece: %s", small);
    printf("  <|endoftext|> in %zu bytes -> %s\n", sizeof small, small);
    lsa_model_free(sp);
    lsa_model_free(bl);

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (!t_failures) CHECK(system(cmd) == 0, "cleanup");
    return t_finish("test_lens");
}
