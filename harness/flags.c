/* Option parsing, help text and the record of given flags, all from one table per command. */
#include "flags.h"

#include <getopt.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define HELP_COLUMN 22 /* where a flag's text starts */
#define HELP_WIDTH 100 /* the last column of the help */

static int is_flag(const cli_flag *f) { return f->name && f->name[0]; }

static size_t count_rows(const cli_flag *flags)
{
    size_t n = 0;
    while (flags[n].name)
        n++;
    return n;
}

/* The index of `word` among the '|'-separated words of `choices`, or -1. */
static int choice_index(const char *choices, const char *word)
{
    size_t len = strlen(word);
    int i = 0;
    for (const char *p = choices; *p; i++) {
        size_t n = strcspn(p, "|");
        if (n == len && len && strncmp(p, word, n) == 0)
            return i;
        p += n + (p[n] == '|');
    }
    return -1;
}

/* "a, b or c" from "a|b|c". */
static void choices_text(const char *choices, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (const char *p = choices; *p && used < cap;) {
        size_t n = strcspn(p, "|");
        const char *next = p + n + (p[n] == '|');
        const char *sep = p == choices ? "" : (*next ? ", " : " or ");
        used += (size_t)snprintf(out + used, cap - used, "%s%.*s", sep, (int)n, p);
        p = next;
    }
}

static void store_int(void *dest, size_t size, int64_t v)
{
    if (size == sizeof(int64_t))
        *(int64_t *)dest = v;
    else
        *(int32_t *)dest = (int32_t)v;
}

static int64_t load_int(const void *dest, size_t size)
{
    return size == sizeof(int64_t) ? *(const int64_t *)dest : *(const int32_t *)dest;
}

/* Parses one flag's value into its destination; prints the error and returns -1 when bad. */
static int parse_value(const char *cmd, cli_flag *f, const char *value)
{
    char flag[128];
    snprintf(flag, sizeof flag, "--%s", f->name);
    switch (f->kind) {
    case CLI_FLAG_SWITCH: *(int *)f->dest = (int)f->lo; return 0;
    case CLI_FLAG_STRING: *(const char **)f->dest = value; return 0;
    case CLI_FLAG_CUSTOM: return f->parse(cmd, flag, value, f->dest) ? -1 : 0;
    case CLI_FLAG_INT: {
        int64_t v;
        /* INT64_MAX as a double rounds up to 2^63, which does not convert back */
        int64_t lo = f->lo <= -9.2e18 ? INT64_MIN : (int64_t)f->lo;
        int64_t hi = f->hi >= 9.2e18 ? INT64_MAX : (int64_t)f->hi;
        if (cli_parse_i64(cmd, flag, value, lo, hi, &v))
            return -1;
        store_int(f->dest, f->size, v);
        return 0;
    }
    case CLI_FLAG_FLOAT: {
        double v;
        if (cli_parse_f64(cmd, flag, value, f->lo, f->hi, &v))
            return -1;
        if (f->size == sizeof(float))
            *(float *)f->dest = (float)v;
        else
            *(double *)f->dest = v;
        return 0;
    }
    case CLI_FLAG_CHOICE: {
        int i = choice_index(f->choices, value);
        if (i < 0) {
            char words[256];
            choices_text(f->choices, words, sizeof words);
            fprintf(stderr, "drsch %s: %s: '%s' is not %s\n", cmd, flag, value, words);
            return -1;
        }
        *(int *)f->dest = i;
        return 0;
    }
    }
    return -1;
}

int cli_flags_parse(const char *cmd, cli_flag *flags, int argc, char **argv, int *first_arg)
{
    size_t rows = count_rows(flags);
    struct option *opts = calloc(rows + 2, sizeof *opts);
    if (!opts) {
        fprintf(stderr, "drsch %s: out of memory parsing the flags\n", cmd);
        return -1;
    }
    size_t n = 0;
    for (size_t i = 0; i < rows; i++) {
        flags[i].given = 0;
        if (!is_flag(&flags[i]))
            continue;
        opts[n].name = flags[i].name;
        opts[n].has_arg = flags[i].kind == CLI_FLAG_SWITCH ? no_argument : required_argument;
        opts[n].val = 256 + (int)i;
        n++;
    }
    opts[n].name = "help";
    opts[n].val = 'h';
    int ch, rc = 0;
    /* "h", not "+h": flags may follow the arguments (drsch data info SPEC --size HxW), as getopt
     * moves the arguments after the flags */
    optind = 0; /* 0, not 1: glibc starts afresh even after a parse that stopped early */
    opterr = 1;
    while (rc == 0 && (ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (ch == 'h')
            rc = CLI_FLAGS_HELP;
        else if (ch < 256) { /* getopt has named the flag; the hint follows */
            cli_usage_error(cmd);
            rc = -1;
        } else if (parse_value(cmd, &flags[ch - 256], optarg))
            rc = -1;
        else
            flags[ch - 256].given = 1;
    }
    free(opts);
    if (rc)
        return rc;
    if (first_arg)
        *first_arg = optind;
    else if (optind < argc) {
        fprintf(stderr, "drsch %s: unexpected argument '%s'\n", cmd, argv[optind]);
        return -1;
    }
    return 0;
}

/* The default a flag's help shows, from its destination's value; "" when it shows none. */
static void default_text(const cli_flag *f, char *out, size_t cap)
{
    out[0] = '\0';
    if (!f->dest || (f->help && strstr(f->help, "(default")))
        return;
    switch (f->kind) {
    case CLI_FLAG_INT: snprintf(out, cap, "%lld", (long long)load_int(f->dest, f->size)); break;
    case CLI_FLAG_FLOAT:
        snprintf(out, cap, "%g",
                 f->size == sizeof(float) ? (double)*(const float *)f->dest
                                          : *(const double *)f->dest);
        break;
    case CLI_FLAG_STRING: {
        const char *s = *(const char *const *)f->dest;
        if (s)
            snprintf(out, cap, "%s", s);
        break;
    }
    case CLI_FLAG_CHOICE: {
        int idx = *(const int *)f->dest, i = 0;
        for (const char *p = f->choices; *p; i++) {
            size_t n = strcspn(p, "|");
            if (i == idx)
                snprintf(out, cap, "%.*s", (int)n, p);
            p += n + (p[n] == '|');
        }
        break;
    }
    default: break;
    }
}

/* Prints `text` from column `col` (the cursor is there), wrapping at HELP_WIDTH with later lines
 * starting at HELP_COLUMN; "(default" and the word after it are kept together. */
static void wrap(FILE *f, const char *text, int col)
{
    int at = col, first = 1;
    for (const char *p = text; *p;) {
        if (*p == ' ' || *p == '\n') {
            p++;
            continue;
        }
        int word = (int)strcspn(p, " \n");
        if (strncmp(p, "(default ", 9) == 0) /* "(default 2000)" stays on one line */
            word += 1 + (int)strcspn(p + word + 1, " \n");
        if (!first && at + 1 + word > HELP_WIDTH) {
            fprintf(f, "\n%*s", HELP_COLUMN, "");
            at = HELP_COLUMN;
        } else if (!first) {
            fputc(' ', f);
            at++;
        }
        fprintf(f, "%.*s", word, p);
        at += word;
        p += word;
        first = 0;
    }
    fputc('\n', f);
}

void cli_flags_help(FILE *f, const cli_flag *flags)
{
    for (const cli_flag *r = flags; r->name; r++) {
        if (r->section)
            fprintf(f, "\n%s\n", r->section);
        if (!is_flag(r))
            continue;
        char head[128], def[256], text[2048];
        int len = snprintf(head, sizeof head, "  --%s%s%s", r->name, r->arg ? " " : "",
                           r->arg ? r->arg : "");
        default_text(r, def, sizeof def);
        snprintf(text, sizeof text, "%s%s%s%s", r->help ? r->help : "", def[0] ? " (default " : "",
                 def, def[0] ? ")" : "");
        if (len + 2 > HELP_COLUMN) {
            fprintf(f, "%s  ", head);
            wrap(f, text, len + 2);
        } else {
            fprintf(f, "%-*s", HELP_COLUMN, head);
            wrap(f, text, HELP_COLUMN);
        }
    }
    fprintf(f, "\n%-*s%s\n", HELP_COLUMN, "  -h, --help", "this text");
}

const cli_flag *cli_flag_find(const cli_flag *flags, const char *name)
{
    for (const cli_flag *r = flags; r->name; r++)
        if (is_flag(r) && strcmp(r->name, name) == 0)
            return r;
    return NULL;
}

int cli_flag_given(const cli_flag *flags, const char *name)
{
    const cli_flag *r = cli_flag_find(flags, name);
    return r && r->given;
}

void cli_flags_copy_given(const cli_flag *flags, const void *from, void *to, size_t size)
{
    const char *lo = from, *hi = lo + size;
    for (const cli_flag *r = flags; r->name; r++) {
        const char *d = r->dest;
        if (!r->given || !d || d < lo || d + r->size > hi)
            continue;
        memcpy((char *)to + (d - lo), d, r->size);
    }
}
