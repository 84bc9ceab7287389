/* The flag tables of the command line (harness/flags.c): parsing into each kind of destination,
 * ranges and their messages, the given-flags record, the help text made from the table. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flags.h"

typedef struct {
    int32_t bits;
    int64_t iters;
    float lr;
    double gamma;
    int mirror, order;
    const char *out;
    int size[2];
} settings;

/* A custom value "HxW" into int[2]. */
static int parse_hw(const char *cmd, const char *flag, const char *value, void *dest)
{
    int *hw = dest;
    if (sscanf(value, "%dx%d", &hw[0], &hw[1]) != 2) {
        fprintf(stderr, "drsch %s: %s: '%s' is not HxW\n", cmd, flag, value);
        return -1;
    }
    return 0;
}

static settings s;
static cli_flag table[16];

static void make_table(void)
{
    s = (settings){.bits = 48, .iters = 100, .lr = 0.01f, .gamma = 0.5, .mirror = 1};
    cli_flag t[] = {
        CLI_SECTION("model:"),
        CLI_INT("bits", &s.bits, 1, 4096, "B", "code length in bits"),
        CLI_INT("iters", &s.iters, 0, 9.3e18, "N", "SGD iterations"),
        CLI_FLOAT("lr", &s.lr, 0, 1, "F", "learning rate"),
        CLI_FLOAT("gamma", &s.gamma, 0, 10, "F", "step factor (default: the dataset's)"),
        CLI_SWITCH("no-mirror", &s.mirror, 0, "no flips"),
        CLI_CHOICE("bit-order", &s.order, "weight|decorrelated|random", "O", "order of the bits"),
        CLI_SECTION("output:"),
        CLI_STRING("out", &s.out, "MODEL", "the model file (required)"),
        CLI_CUSTOM("size", s.size, parse_hw, "HxW", "image size"),
        CLI_END,
    };
    memcpy(table, t, sizeof t);
}

/* Runs cli_flags_parse on a space-separated command line; its stderr into err. */
static int parse(const char *line, char *err, size_t cap, int *first_arg)
{
    static char buf[512]; /* string flags point into it */
    char *argv[32];
    int argc = 0;
    snprintf(buf, sizeof buf, "cmd %s", line);
    for (char *tok = strtok(buf, " "); tok && argc < 31; tok = strtok(NULL, " "))
        argv[argc++] = tok;
    argv[argc] = NULL;
    fflush(stderr);
    int saved = dup(2);
    FILE *tmp = tmpfile();
    dup2(fileno(tmp), 2);
    int rc = cli_flags_parse("test", table, argc, argv, first_arg);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(tmp);
    size_t n = fread(err, 1, cap - 1, tmp);
    err[n] = '\0';
    fclose(tmp);
    return rc;
}

TestSuite(flags, .init = make_table);

Test(flags, values_reach_their_destinations_and_are_marked_given)
{
    char err[1024];
    int rc = parse("--bits 16 --iters 9000000000 --lr 0.5 --gamma 2.5 --no-mirror --bit-order "
                   "random --out m.bin --size 3x4",
                   err, sizeof err, NULL);
    cr_assert_eq(rc, 0, "%s", err);
    cr_expect_eq(s.bits, 16);
    cr_expect_eq(s.iters, 9000000000LL);
    cr_expect_float_eq(s.lr, 0.5f, 0);
    cr_expect_float_eq(s.gamma, 2.5, 0);
    cr_expect_eq(s.mirror, 0);
    cr_expect_eq(s.order, 2);
    cr_expect_str_eq(s.out, "m.bin");
    cr_expect(s.size[0] == 3 && s.size[1] == 4);
    cr_expect(cli_flag_given(table, "bits") && cli_flag_given(table, "size"));
    cr_expect_str_eq(err, "");
}

Test(flags, flags_not_given_keep_their_defaults_and_are_not_marked)
{
    char err[1024];
    cr_assert_eq(parse("--bits 12", err, sizeof err, NULL), 0, "%s", err);
    cr_expect_eq(s.iters, 100);
    cr_expect_eq(s.mirror, 1);
    cr_expect(!cli_flag_given(table, "iters") && !cli_flag_given(table, "no-mirror"));
    cr_expect(!cli_flag_given(table, "nonexistent"));
    cr_expect_null(cli_flag_find(table, "model:"));
}

Test(flags, bad_values_are_refused_with_the_flag_named)
{
    static const struct {
        const char *line, *needle;
    } cases[] = {
        {"--bits 0", "--bits: 0 is out of range: it must be 1 to 4096"},
        {"--bits 12x", "--bits: '12x' is not an integer"},
        {"--iters -1", "--iters: -1 is out of range: it must be at least 0"},
        {"--lr nan", "--lr: 'nan' is not a finite number"},
        {"--lr 2", "--lr: 2 is out of range: it must be 0 to 1"},
        {"--bit-order size", "--bit-order: 'size' is not weight, decorrelated or random"},
        {"--size 3", "--size: '3' is not HxW"},
        {"--frobnicate 1", "see 'drsch test --help'"},
        {"--bits", "see 'drsch test --help'"},
        {"extra", "unexpected argument 'extra'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[1024];
        make_table();
        cr_expect_eq(parse(cases[i].line, err, sizeof err, NULL), -1, "%s", cases[i].line);
        cr_expect(strstr(err, cases[i].needle), "%s: '%s' not in: %s", cases[i].line,
                  cases[i].needle, err);
        cr_expect(strncmp(err, "drsch test: ", 12) == 0 || strstr(err, "\ndrsch test: "), "%s",
                  err);
    }
}

Test(flags, help_stops_parsing_and_arguments_are_left_when_asked)
{
    char err[1024];
    cr_expect_eq(parse("--bits 3 --help --bits 0", err, sizeof err, NULL), CLI_FLAGS_HELP);
    cr_expect_eq(parse("-h", err, sizeof err, NULL), CLI_FLAGS_HELP);
    int first = 0;
    make_table();
    cr_assert_eq(parse("--bits 3 base.json cur.json", err, sizeof err, &first), 0, "%s", err);
    cr_expect_eq(first, 3);
    cr_expect_eq(s.bits, 3);
}

Test(flags, copy_given_overrides_only_the_flags_given)
{
    char err[1024];
    cr_assert_eq(parse("--bits 16 --lr 0.25", err, sizeof err, NULL), 0, "%s", err);
    settings later = {.bits = 64, .iters = 7, .lr = 0.1f, .gamma = 0.9, .mirror = 0};
    cli_flags_copy_given(table, &s, &later, sizeof s);
    cr_expect_eq(later.bits, 16);
    cr_expect_float_eq(later.lr, 0.25f, 0);
    cr_expect_eq(later.iters, 7);
    cr_expect_float_eq(later.gamma, 0.9, 0);
    cr_expect_eq(later.mirror, 0);
}

Test(flags, help_lists_every_flag_with_its_default_wrapped_at_100_columns)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    s.order = 1;
    table[1].help = "code length in bits; a long text that must wrap onto a second line, indented "
                    "to the column where every flag's text starts, and then more words.";
    cli_flags_help(f, table);
    fclose(f);
    cr_expect(strstr(text, "\nmodel:\n  --bits B            code length in bits;"), "%s", text);
    cr_expect(strstr(text,
                     "\n                      to the column where every flag's text starts, and"
                     " then more words.\n                      (default 48)\n"),
              "%s", text);
    cr_expect(strstr(text, "  --lr F              learning rate (default 0.01)\n"), "%s", text);
    /* "(default 48)" is never split over two lines */
    cr_expect(!strstr(text, "(default\n"), "%s", text);
    cr_expect(strstr(text, "step factor (default: the dataset's)\n"), "%s", text);
    cr_expect(strstr(text, "  --no-mirror         no flips\n"), "%s", text);
    cr_expect(strstr(text, "order of the bits (default decorrelated)\n"), "%s", text);
    cr_expect(strstr(text, "\noutput:\n  --out MODEL         the model file (required)\n"), "%s",
              text);
    cr_expect(strstr(text, "\n  -h, --help          this text\n"), "%s", text);
    for (char *line = text; *line; line += strcspn(line, "\n") + (line[strcspn(line, "\n")] != 0))
        cr_expect_leq(strcspn(line, "\n"), 100, "%.*s", (int)strcspn(line, "\n"), line);
    free(text);
}

Test(flags, arguments_may_come_before_between_and_after_the_flags)
{
    /* drsch data info SPEC --size HxW, drsch compare A B --no-time: the flags after an argument
     * are parsed, the arguments are left at the end in their order */
    char a0[] = "cmd", a1[] = "base.json", a2[] = "--bits", a3[] = "3", a4[] = "cur.json",
         a5[] = "--no-mirror";
    char *argv[] = {a0, a1, a2, a3, a4, a5, NULL};
    int first = 0;
    cr_assert_eq(cli_flags_parse("test", table, 6, argv, &first), 0);
    cr_expect_eq(s.bits, 3);
    cr_expect_eq(s.mirror, 0);
    cr_assert_eq(first, 4);
    cr_expect_str_eq(argv[4], "base.json");
    cr_expect_str_eq(argv[5], "cur.json");
}
