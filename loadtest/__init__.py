"""Load tests and benchmarks: Locust users and load shapes, the engine, gateway and peer
benchmarks, and the exports that calibrate the simulation.
"""
