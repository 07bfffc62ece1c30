"""Fast versions of bertnp's ops (Numba on CPU, CuPy on GPU), installed as bertnp.kernels."""
