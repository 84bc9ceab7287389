/* The flags of a command, declared once: one table row per flag (name, kind, range, value name,
 * help, destination) from which come the option parsing, the --help text and the record of which
 * flags were given. Part of the command line (it prints its errors), not of the library.
 *
 *     int64_t k = 100;
 *     const char *db = NULL;
 *     cli_flag flags[] = {
 *         CLI_STRING("db", &db, "FILE", "the database codes (required)"),
 *         CLI_INT("k", &k, 1, 1000000, "K", "neighbours of each query"),
 *         CLI_END,
 *     };
 *     int rc = cli_flags_parse("search", flags, argc, argv, NULL);
 *     if (rc == CLI_FLAGS_HELP) ...print the usage with cli_flags_help(stdout, flags)...
 *
 * Defaults are the destinations' values before parsing: the help appends "(default V)" to a
 * flag's text unless the text already says "(default" itself (a default that depends on the data,
 * say) or the flag is a switch or has no value yet (a string still NULL). */
#ifndef DRSCH_FLAGS_H
#define DRSCH_FLAGS_H

#include <stddef.h>
#include <stdio.h>

typedef enum {
    CLI_FLAG_SWITCH, /* no value: stores `lo` in the int destination */
    CLI_FLAG_INT,    /* an integer in [lo, hi] into an int32_t / int / int64_t / uint64_t */
    CLI_FLAG_FLOAT,  /* a finite number in [lo, hi] into a float or double */
    CLI_FLAG_STRING, /* the argument itself, into a const char * */
    CLI_FLAG_CHOICE, /* one of the '|'-separated words of `choices`: its index, into an int/enum */
    CLI_FLAG_CUSTOM, /* parse(cmd, flag, value, dest): prints its error, returns -1 if bad */
} cli_flag_kind;

typedef struct cli_flag {
    const char *name; /* without the leading "--"; NULL ends the table */
    cli_flag_kind kind;
    void *dest;
    size_t size;         /* sizeof the destination (INT, FLOAT) */
    double lo, hi;       /* INT, FLOAT: the range; SWITCH: lo is the value stored */
    const char *choices; /* CHOICE */
    int (*parse)(const char *cmd, const char *flag, const char *value, void *dest); /* CUSTOM */
    const char *arg;     /* the value's name in the help ("N", "FILE"); NULL for a switch */
    const char *help;    /* what the flag does, one paragraph (wrapped by cli_flags_help) */
    const char *section; /* when not NULL, a heading printed before this flag's line */
    int given;           /* set by cli_flags_parse: the flag was on the command line */
} cli_flag;

#define CLI_INT(name, ptr, lo, hi, arg, help)                                                      \
    {                                                                                              \
        (name), CLI_FLAG_INT, (ptr), sizeof *(ptr), (lo), (hi), NULL, NULL, (arg), (help), NULL, 0 \
    }
#define CLI_FLOAT(name, ptr, lo, hi, arg, help)                                                    \
    {                                                                                              \
        (name), CLI_FLAG_FLOAT, (ptr), sizeof *(ptr), (lo), (hi), NULL, NULL, (arg), (help), NULL, \
            0                                                                                      \
    }
#define CLI_STRING(name, ptr, arg, help)                                                           \
    {                                                                                              \
        (name), CLI_FLAG_STRING, (ptr), sizeof *(ptr), 0, 0, NULL, NULL, (arg), (help), NULL, 0    \
    }
#define CLI_CHOICE(name, ptr, choices, arg, help)                                                  \
    {                                                                                              \
        (name), CLI_FLAG_CHOICE, (ptr), sizeof *(ptr), 0, 0, (choices), NULL, (arg), (help), NULL, \
            0                                                                                      \
    }
#define CLI_SWITCH(name, ptr, value, help)                                                         \
    {                                                                                              \
        (name), CLI_FLAG_SWITCH, (ptr), sizeof *(ptr), (value), 0, NULL, NULL, NULL, (help), NULL, \
            0                                                                                      \
    }
#define CLI_CUSTOM(name, ptr, parse, arg, help)                                                    \
    {                                                                                              \
        (name), CLI_FLAG_CUSTOM, (ptr), sizeof *(ptr), 0, 0, NULL, (parse), (arg), (help), NULL, 0 \
    }
/* A heading before the flags that follow it in the help: "network and solver:". */
#define CLI_SECTION(title)                                                                         \
    {                                                                                              \
        "", CLI_FLAG_SWITCH, NULL, 0, 0, 0, NULL, NULL, NULL, NULL, (title), 0                     \
    }
#define CLI_END                                                                                    \
    {                                                                                              \
        NULL, CLI_FLAG_SWITCH, NULL, 0, 0, 0, NULL, NULL, NULL, NULL, NULL, 0                      \
    }

#define CLI_FLAGS_HELP 1 /* cli_flags_parse: -h or --help was given (nothing else was parsed) */

/* Parses argv[1..] (argv[0] is the command's name) into the table's destinations and marks the
 * flags given. Arguments that are not flags are left in argv[*first_arg..argc) when first_arg is
 * not NULL, else refused. Returns 0, CLI_FLAGS_HELP, or -1 after printing
 * "drsch <cmd>: ..." (an unknown flag, a missing or bad value, an unexpected argument). */
int cli_flags_parse(const char *cmd, cli_flag *flags, int argc, char **argv, int *first_arg);

/* The flags' help: "  --name ARG          text (default V)", wrapped at 100 columns with the text
 * at column 22, the section headings, and "  -h, --help  this text" at the end. */
void cli_flags_help(FILE *f, const cli_flag *flags);

/* The row of flag `name`, or NULL. */
const cli_flag *cli_flag_find(const cli_flag *flags, const char *name);
/* 1 if flag `name` was given (0 for a name the table does not have). */
int cli_flag_given(const cli_flag *flags, const char *name);

/* For every flag given whose destination lies inside the object `from` (of `size` bytes), copies
 * its value to the same place in `to`: the flags given override defaults computed after parsing
 * (train's defaults depend on the dataset). */
void cli_flags_copy_given(const cli_flag *flags, const void *from, void *to, size_t size);

#endif
