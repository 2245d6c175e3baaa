/*
 * cli.h — the lsa command line. The CLI is the only code that prints or exits: each subcommand parses
 * its options, calls the library, and returns an exit status (0 ok, 1 bad input, 2 bad usage).
 */
#ifndef LSA_CLI_H
#define LSA_CLI_H

#include <stdio.h>

#define LSA_EXIT_OK 0
#define LSA_EXIT_INPUT 1
#define LSA_EXIT_USAGE 2

int lsa_cli_info(int argc, char **argv);
int lsa_cli_run(int argc, char **argv);
int lsa_cli_capture(int argc, char **argv);
int lsa_cli_compare(int argc, char **argv);
int lsa_cli_report(int argc, char **argv);
/* The largest --text document read whole into memory. */
#define LSA_CLI_TEXT_MAX ((size_t)4 << 30)

/* "lsa: error: <message>" on stderr; returns LSA_EXIT_INPUT. */
int lsa_cli_fail(void);
/* "lsa: error: <fmt>" for usage mistakes; returns LSA_EXIT_USAGE. */
int lsa_cli_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
