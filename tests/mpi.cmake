# drsch search under mpirun (harness/dist.c, cmd_search_slices.c), only in builds with MPI
# (DRSCH_MPI): for 1, 2 and 3 ranks the files are byte-identical to the one-process run's,
# --db-shards gives the bytes of --db, and a corrupt shard on one rank ends every rank with one
# message naming it. The tests run mpirun (MPIEXEC_EXECUTABLE of FindMPI) themselves; one
# worker at a time (each runs up to 3 ranks).
if(DRSCH_MPI AND MPIEXEC_EXECUTABLE)
  drsch_criterion_test(test_mpi JOBS 1 SOURCES test_mpi.c test_util.c fixture_cuhk03.c
                       LIBS drsch_io drsch_harness DNNL::dnnl PkgConfig::HDF5)
  add_dependencies(test_mpi drsch)
  set_property(TEST test_mpi APPEND PROPERTY ENVIRONMENT "DRSCH_MPIEXEC=${MPIEXEC_EXECUTABLE}")
elseif(DRSCH_MPI)
  message(STATUS "mpirun not found (Debian: openmpi-bin): test_mpi is not built")
endif()
