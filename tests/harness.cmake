# The harness suite: .npy I/O, JSON reports and the drsch command line end to end. test_util.c
# (temp dir, running a command, file helpers) is shared with the reproduce and train suites.
drsch_criterion_test(test_harness SOURCES test_harness.c test_util.c LIBS drsch_harness DNNL::dnnl)
add_dependencies(test_harness drsch)
drsch_criterion_test(test_metrics SOURCES test_metrics.c LIBS drsch_harness DNNL::dnnl)
# drsch reproduce on CUHK03 end to end, and its re-id experiment through the library (reproduce.h)
# against the command (a synthetic cuhk-03.mat written by fixture_cuhk03.c;
# the shared test helpers of test_util.c). One worker at a time: each test runs drsch on both
# cores already, and with two workers libcriterion 2.4.1's runner loses a 48-byte block when
# they finish together, which LeakSanitizer reports in ci/sanitize.
drsch_criterion_test(test_reproduce JOBS 1 SOURCES test_reproduce.c fixture_cuhk03.c test_util.c
                     LIBS drsch_harness DNNL::dnnl PkgConfig::HDF5)
add_dependencies(test_reproduce drsch)
# A synthetic cuhk-03.mat of the CUHK03 release's shape, for timing the re-id path (README,
# CUHK03), and the check that drsch reads it back as written.
add_executable(make_cuhk03 make_cuhk03.c fixture_cuhk03.c)
target_link_libraries(make_cuhk03 PRIVATE PkgConfig::HDF5)
add_test(NAME make_cuhk03_is_read_back
         COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/check_make_cuhk03.sh $<TARGET_FILE:make_cuhk03>
                 $<TARGET_FILE:drsch>)
# The command line as a whole: -h / --help of every command, help texts, outputs checked before
# long work, flags shared by the commands (--threads, --repetitions).
drsch_criterion_test(test_cli SOURCES test_cli.c test_util.c)
add_dependencies(test_cli drsch)
# A library whose destructor writes stdout at exit, preloaded into drsch by test_cli.
add_library(stdout_at_exit MODULE stdout_at_exit.c)
add_dependencies(test_cli stdout_at_exit)
target_compile_definitions(test_cli PRIVATE STDOUT_AT_EXIT_SO="$<TARGET_FILE:stdout_at_exit>")
# drsch eval, search and encode at the command line: checks made before work (missing flags,
# outputs, inputs, --threads), the weight-file rule, the eval table and its failures.
drsch_criterion_test(test_commands SOURCES test_commands.c test_util.c LIBS drsch_harness DNNL::dnnl)
add_dependencies(test_commands drsch)
# The comparison rules of drsch compare / reproduce (report_compare.c) on hand-made reports, and
# drsch compare end to end.
drsch_criterion_test(test_compare SOURCES test_compare.c test_util.c LIBS drsch_harness DNNL::dnnl)
add_dependencies(test_compare drsch)
# Library messages a user sees: file errors of readers and writers (a directory, a missing file or
# folder) name the path and the cause; messages carry no internal function names.
drsch_criterion_test(test_messages SOURCES test_messages.c test_util.c LIBS drsch_harness DNNL::dnnl)
# Faults on the output side: failed writes (a full tmpfs, a file-size limit) keep the old file,
# links and devices, output sets and their manifest, locks against a second writer, signals.
drsch_criterion_test(test_faults SOURCES test_faults.c test_util.c LIBS drsch_harness DNNL::dnnl)
add_dependencies(test_faults drsch)
# Faults on the input side: FIFOs and devices refused by every reader before the first read (run
# in-process under alarm()), training states checked against the resuming run (iteration, the
# settings that differ named, --iters extension), the state writer's causes, JSON parse errors.
drsch_criterion_test(test_faults_inputs SOURCES test_faults_inputs.c test_util.c LIBS drsch_cli drsch_harness DNNL::dnnl)
# Faults of the environment: stdout that cannot be written (a full disk, a closed pipe) fails the
# command; LAPACK is loaded only when ITQ needs it (OpenBLAS's pool hung every command under
# ulimit -v); OMP_NUM_THREADS is capped at 1024 and more threads than cores warns.
drsch_criterion_test(test_faults_env SOURCES test_faults_env.c test_util.c LIBS drsch_harness DNNL::dnnl)
add_dependencies(test_faults_env drsch)
# What the commands share about an experiment (experiment.h), in process: the codes and bit
# weights of a model on a split, and multi-hot labels packed as bitmasks.
drsch_criterion_test(test_experiment SOURCES test_experiment.c test_util.c LIBS drsch_harness DNNL::dnnl)
# The flag tables every command declares its flags with (harness/flags.c): parsing, ranges and
# their messages, the flags given, the help made from the table.
drsch_criterion_test(test_flags SOURCES test_flags.c LIBS drsch_cli drsch_harness DNNL::dnnl)
