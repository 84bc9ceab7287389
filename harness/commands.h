/* drsch command line: every subcommand is `int cmd_x(int argc, char **argv)` with argv[0] the
 * subcommand name. A command parses its flags (getopt_long), prints results to stdout or files,
 * logs and progress to stderr, and returns the process exit code (0 ok, 1 failure, 2 usage). */
#ifndef DRSCH_COMMANDS_H
#define DRSCH_COMMANDS_H

#define EXIT_USAGE 2

int cmd_search(int argc, char **argv);        /* harness/cmd_search.c */
int cmd_bench(int argc, char **argv);         /* harness/cmd_bench.c: dispatches below */
int cmd_bench_hamming(int argc, char **argv); /* harness/cmd_bench_hamming.c */
int cmd_bench_train(int argc, char **argv);   /* harness/cmd_bench_train.c */
int cmd_bench_encode(int argc, char **argv);  /* harness/cmd_bench_train.c */
int cmd_train(int argc, char **argv);         /* harness/cmd_train.c */
int cmd_encode(int argc, char **argv);        /* harness/cmd_encode.c */
int cmd_reproduce(int argc, char **argv);     /* harness/cmd_reproduce.c */
int cmd_sweep(int argc, char **argv);         /* harness/cmd_sweep.c */
int cmd_eval(int argc, char **argv);          /* harness/cmd_eval.c */
int cmd_compare(int argc, char **argv);       /* harness/cmd_compare.c */
int cmd_version(int argc, char **argv);       /* harness/main.c */
int cmd_data(int argc, char **argv);          /* harness/cmd_data.c */
int cmd_bench_data(int argc, char **argv);    /* harness/cmd_data.c */

#endif
