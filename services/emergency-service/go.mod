module example.com/sos-app/emergency-service

go 1.21
