# drsch search under mpirun (harness/dist.c, cmd_search_slices.c), only in builds with MPI
# (DRSCH_MPI): for 1, 2 and 3 ranks the files are byte-identical to the one-process run's,
# --db-shards gives the bytes of --db, and a corrupt shard on one rank ends every rank with one
# message naming it. The tests run mpirun (MPIEXEC_EXECUTABLE of FindMPI) themselves, with
# --oversubscribe: two workers at a time run up to 6 ranks on 2 cores, and the suite takes 98 s
# instead of 149 s with one worker (2-core Zen 5 VM), its longest test 68 s under a 240 s limit.
# NO_LEAK_CHECK: under the sanitizers its ranks start Open MPI, whose MPI_Init leaves allocations
# in components it unloads at MPI_Finalize; LeakSanitizer reports them from frames it can no
# longer name, so no suppression can match them.
if(DRSCH_MPI AND MPIEXEC_EXECUTABLE)
  drsch_criterion_test(test_mpi JOBS 2 NO_LEAK_CHECK SOURCES test_mpi.c test_util.c fixture_cuhk03.c
                       LIBS drsch_io drsch_harness DNNL::dnnl PkgConfig::HDF5)
  add_dependencies(test_mpi drsch)
  set_property(TEST test_mpi APPEND PROPERTY ENVIRONMENT "DRSCH_MPIEXEC=${MPIEXEC_EXECUTABLE}")
  # The second longest suite under ASan (after test_train): CTest starts it next (ci/sanitize).
  set_tests_properties(test_mpi PROPERTIES COST 500)
elseif(DRSCH_MPI)
  message(STATUS "mpirun not found (Debian: openmpi-bin): test_mpi is not built")
endif()
