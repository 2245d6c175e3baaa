/*
 * fuzz_config — config.json → struct lsa_arch on hostile input: any JSON (or not-JSON) must give a
 * one-line error or an architecture whose counts the rest of lsa can rely on.
 */
#include "fuzz_util.h"
#include "lsa/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fz_write("config.json", data, size);
    struct lsa_arch a;
    fz_clear_error();
    int rc = lsa_arch_from_config(path, &a);
    if (rc) {
        if (rc > 0) abort();
        fz_check_error("lsa_arch_from_config");
        return 0;
    }
    /* What the model loader and the forward assume of an accepted config. */
    if (a.n_layer <= 0 || a.d_model <= 0 || a.n_head <= 0 || a.n_head_kv <= 0 || a.d_ff <= 0 || a.n_vocab <= 0 ||
        a.d_head <= 0 || a.n_head % a.n_head_kv || !(a.norm_eps > 0) || a.model_type[sizeof a.model_type - 1])
        abort();
    if (a.pos == LSA_POS_ROPE && (a.rope_dims < 0 || a.rope_dims > a.d_head || a.rope_dims % 2 ||
                                  !(a.rope_theta > 0) || !(a.rope_linear_factor > 0)))
        abort();
    return 0;
}
