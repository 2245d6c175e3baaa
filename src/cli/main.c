/*
 * main.c — dispatch `lsa <command>` and turn library errors into git-style one-line messages.
 */
#include "cli/cli.h"
#include "lsa/lsa.h"

#include <stdarg.h>
#include <string.h>

static const char usage[] =
    "usage: lsa <command> [options]\n"
    "\n"
    "commands:\n"
    "  info MODEL|FILE.h5    a checkpoint (architecture, dims, parameters, dtype, tokenizer) or a capture\n"
    "  capture --model M     stream every layer's activations over a corpus into an HDF5 file\n"
    "  run MODEL [options]   tokenize text, run the forward (with a layer plan), print per-token NLL\n"
    "  report CAPTURE.h5     similarity, redundancy, logit lens, robustness: report.pdf, figures, results\n"
    "  compare SUMMARY...    overlay several reports' per-layer curves by relative depth\n"
    "\n"
    "MODEL is a Hugging Face model folder, a model id found in the local Hugging Face cache, a GGUF file\n"
    "or a llama2.c .bin checkpoint.\n"
    "`lsa <command> --help` describes each command.\n";

int lsa_cli_fail(void)
{
    fprintf(stderr, "lsa: error: %s\n", lsa_errmsg());
    return LSA_EXIT_INPUT;
}

int lsa_cli_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("lsa: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return LSA_EXIT_USAGE;
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? LSA_EXIT_USAGE : LSA_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("lsa %s\n", LSA_VERSION);
        return LSA_EXIT_OK;
    }
    if (!strcmp(argv[1], "info")) return lsa_cli_info(argc - 1, argv + 1);
    if (!strcmp(argv[1], "run")) return lsa_cli_run(argc - 1, argv + 1);
    if (!strcmp(argv[1], "capture")) return lsa_cli_capture(argc - 1, argv + 1);
    if (!strcmp(argv[1], "compare")) return lsa_cli_compare(argc - 1, argv + 1);
    if (!strcmp(argv[1], "report")) return lsa_cli_report(argc - 1, argv + 1);
    return lsa_cli_usage("unknown command '%s' (see lsa --help)", argv[1]);
}
