"""The face model stage: ICT-FaceKit arrays (`model`), where they come from (`assets`), mesh and UV geometry
(`geometry`) and the FACS rig from identity + AUs to a posed mesh (`rig`)."""
