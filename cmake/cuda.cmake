# Resolves MOE_WITH_CUDA into MOE_HAVE_CUDA and enables the CUDA language when
# it is wanted and available. AUTO builds CUDA code whenever nvcc is found, so
# machines without a GPU still compile it.
include(CheckLanguage)
set(MOE_HAVE_CUDA OFF)
if(NOT MOE_WITH_CUDA STREQUAL "OFF")
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    # CMake 3.25 knows no CUDA20 flags for nvcc; device code is C++17.
    set(CMAKE_CUDA_STANDARD 17)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(MOE_HAVE_CUDA ON)
  elseif(MOE_WITH_CUDA STREQUAL "ON")
    message(FATAL_ERROR "MOE_WITH_CUDA=ON but no CUDA compiler (nvcc) was found")
  endif()
endif()
message(STATUS "moe-serve: CUDA ${MOE_HAVE_CUDA} (MOE_WITH_CUDA=${MOE_WITH_CUDA})")
