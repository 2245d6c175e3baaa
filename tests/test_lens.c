/*
 * test_lens — the logit lens against golden truths: at the last residual point the lens is the model
 * itself, so its cross-entropy equals transformers' mean NLL, KL to the final distribution is ~0 and
 * top-1 agreement is 1; entropies and probabilities are in range everywhere; the grid's top-1 at the last
 * point is transformers' top-1. Captures are made with the CLI (path given as argv[1]).
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
            struct lsa_lens_result r;
            REQUIRE(lsa_lens_run(cr, m, &o, &r) == 0, "%s", lsa_errmsg());
            float *nll;
            size_t n;
            REQUIRE(lsa_h5_read_f32(g, "/texts/0/nll", &nll, &n) == 0, "%s", lsa_errmsg());
            double mean = 0;
            for (size_t i = 0; i < n; i++) mean += nll[i];
            mean /= (double)n;
            int P = r.n_points, last = P - 1;
            double tol = f32 ? 1e-4 : 2e-2; /* f16 activations move the lens by their rounding */
            CHECK((size_t)r.n_tokens == n, "%s: %lld tokens scored, want %zu", dir, (long long)r.n_tokens, n);
            CHECK(fabs(r.cross_entropy[last] - mean) < tol, "%s %s: lens CE at the last point %.6f vs golden mean nll %.6f",
                  dir, f32 ? "f32" : "f16", r.cross_entropy[last], mean);
            if (f32) {
                CHECK(r.kl_to_final[last] < 1e-6 && r.top1_agree_final[last] == 1.0,
                      "%s: last point KL %.3g, top-1 agreement %g", dir, r.kl_to_final[last], r.top1_agree_final[last]);
                int64_t *top5;
                REQUIRE(lsa_h5_read_i64(g, "/texts/0/top5_ids", &top5, &n) == 0, "%s", lsa_errmsg());
                int bad = 0;
                for (int c = 0; c < r.grid_cols; c++) bad += r.grid_top[(size_t)last * r.grid_cols + c] != top5[(size_t)c * 5];
                CHECK(bad == 0, "%s: grid top-1 at the last point differs from transformers' at %d positions", dir, bad);
                free(top5);
            }
            for (int l = 0; l < P; l++) {
                double Hmax = log((double)lsa_model_arch(m)->n_vocab);
                CHECK(r.entropy[l] >= 0 && r.entropy[l] <= Hmax + 1e-9 && r.true_prob[l] > 0 && r.true_prob[l] <= 1 &&
                          r.kl_to_final[l] >= 0 && r.true_rank_median[l] >= 0,
                      "%s point %d: entropy %g prob %g kl %g", dir, l, r.entropy[l], r.true_prob[l], r.kl_to_final[l]);
                CHECK(isfinite(r.cross_entropy[l]) && r.cross_entropy[l] >= 0, "%s point %d: CE %g", dir, l,
                      r.cross_entropy[l]);
            }
            printf("  %s (%s): %d points, CE first %.3f last %.4f (golden %.4f), KL first %.3f\n", dir,
                   f32 ? "f32" : "f16", P, r.cross_entropy[0], r.cross_entropy[last], mean, r.kl_to_final[0]);
            lsa_lens_free(&r);
            free(nll);
            lsa_capture_read_close(cr);
            lsa_model_free(m);
        }
        lsa_h5_close(g);
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (!t_failures) CHECK(system(cmd) == 0, "cleanup");
    return t_finish("test_lens");
}
